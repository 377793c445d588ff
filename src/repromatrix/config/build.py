"""Cross-checks of a matrix.yaml whose shape pydantic accepted, and conversion to `Matrix`.

Every problem becomes a single-line `ConfigError` naming `file:line:column` and the fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError

from repromatrix.config import values
from repromatrix.config.checks import check_values
from repromatrix.config.digest import CodeTooLarge, script_digest
from repromatrix.config.matrix import Matrix, Rule
from repromatrix.config.messages import config_error, did_you_mean, named, undeclared_hint
from repromatrix.config.schema import LibrarySpec, MatrixSpec, RevisionSpec, RuleSpec
from repromatrix.config.yamlsrc import Located, PathKey, display_name
from repromatrix.errors import ConfigError
from repromatrix.model import (
    CPU,
    CPU_GPU,
    HOST_BASE,
    Base,
    BaseKind,
    GpuType,
    InstallMode,
    Library,
    Repro,
    Revision,
    SourceKind,
)
from repromatrix.pep440 import pep440
from repromatrix.safetext import excerpt


def build_matrix(located: Located, *, root: Path, path: Path) -> Matrix:
    if not isinstance(located.data, dict):
        raise ConfigError(
            f"{located.mark(())}: the matrix must be a mapping with 'schema' and 'repros' "
            "(and 'gpus', 'libraries' where repros use them); see README.md"
        )
    try:
        spec = MatrixSpec.model_validate(located.data)
    except ValidationError as exc:
        raise config_error(exc, located) from None
    check_values(located, spec)
    return _Builder(located, spec, root, path).build()


# -- cross-references and conversion ------------------------------------------------------


class _Builder:
    def __init__(self, located: Located, spec: MatrixSpec, root: Path, path: Path) -> None:
        self.loc = located
        self.spec = spec
        self.root = root
        self.path = path

    def fail(self, path: PathKey, message: str, *, key: bool = False) -> ConfigError:
        return ConfigError(f"{self.loc.mark(path, key=key)}: {message}")

    def build(self) -> Matrix:
        bases = self._bases()
        gpus = self._gpus()
        libraries = {name: self._library(name, lib) for name, lib in self.spec.libraries.items()}
        repros = {name: self._repro(name, bases, gpus, libraries) for name in self.spec.repros}
        include = tuple(
            self._rule(("include", i), r, bases, gpus, libraries, repros, full=True)
            for i, r in enumerate(self.spec.include)
        )
        exclude = tuple(
            self._rule(("exclude", i), r, bases, gpus, libraries, repros, full=False)
            for i, r in enumerate(self.spec.exclude)
        )
        return Matrix(
            path=self.path,
            root=self.root,
            bases=bases,
            gpus=gpus,
            libraries=libraries,
            repros=repros,
            include=include,
            exclude=exclude,
        )

    def _bases(self) -> dict[str, Base]:
        bases = {HOST_BASE: Base(name=HOST_BASE, kind=BaseKind.HOST)}
        for name, img in self.spec.images.items():
            if name == HOST_BASE:
                raise self.fail(
                    ("images", name),
                    f"'{HOST_BASE}' is reserved for the host interpreter; rename the image",
                    key=True,
                )
            # The reference's grammar is checked with every other value (checks.py).
            bases[name] = Base(
                name=name,
                kind=BaseKind.IMAGE,
                ref=img.ref,
                released=img.released,
                ships=dict(img.ships),
            )
        return bases

    def _gpus(self) -> dict[str, GpuType]:
        gpus = {CPU_GPU: CPU}
        seen: dict[str, str] = {}
        for name, g in self.spec.gpus.items():
            if name == CPU_GPU:
                raise self.fail(
                    ("gpus", name),
                    f"'{CPU_GPU}' is reserved for cells that need no GPU; rename the GPU type",
                    key=True,
                )
            for i, smi in enumerate(g.smi_names):
                same = smi.strip().lower()  # as `host.matches` compares them
                if not same or same in seen:
                    raise self.fail(("gpus", name, "smi_names", i), (
                        f"nvidia-smi name '{_e(smi)}' is already claimed by GPU type "
                        f"'{_e(seen[same])}' (case aside); a name must map to one type"
                    ) if same else "an empty nvidia-smi name matches no GPU; write it")  # fmt: skip
                seen[same] = name
            gpus[name] = GpuType(
                name=name,
                compute_capability=g.compute_capability,
                smi_names=tuple(g.smi_names),
                shared_memory_per_sm_kb=g.shared_memory_per_sm_kb,
            )
        return gpus

    def _library(self, name: str, lib: LibrarySpec) -> Library:
        here = ("libraries", name)
        if lib.pypi is None and lib.git is None:
            raise self.fail(
                here, f"library '{name}' needs a source: add 'pypi:' or 'git:'", key=True
            )
        revisions: list[Revision] = []
        labels: dict[object, Revision] = {}
        for i, raw in enumerate(lib.versions):
            rev = self._revision(name, lib, (*here, "versions", i), raw)
            # 1.0 and 1.0.0 are one release to pip (a commit's abbreviation and its hash one
            # commit): two cells would run it twice. A label names its cells (ids, --library,
            # a repro's list): a release 1.0 and a git tag 1.0 were one id, and one was lost.
            same = _release(rev.label) if rev.kind is SourceKind.PYPI else f"git {rev.label}"
            keys = (same, ("label", rev.label))
            first = next((labels[k] for k in keys if k in labels), None)
            if first := first or values.same_commit(rev, revisions):
                shown = f"'{_e(rev.label)}'"
                one = "commit" if rev.kind is first.kind is SourceKind.GIT else "release"
                twice = f"revision {shown} twice" if first.label == rev.label else (
                    f"{shown}, the same {one} as '{_e(first.label)}'")  # fmt: skip
                fix = "remove one"
                if first.kind is not rev.kind:
                    fix += ", or pin the git one by its commit (a label names its cells)"
                raise self.fail((*here, "versions", i), f"library '{name}' lists {twice}; {fix}")
            labels.update(dict.fromkeys(keys, rev))
            revisions.append(rev)
        if lib.install == "pythonpath" and lib.git is None:
            raise self.fail(
                (*here, "install"),
                "install: pythonpath applies to git revisions; add 'git:' or remove it",
            )
        return Library(
            name=name,
            pypi=lib.pypi,
            git=lib.git,
            import_name=lib.import_name,
            install=InstallMode(lib.install),
            revisions=tuple(revisions),
            requires=tuple(lib.requires),
        )

    def _revision(
        self, name: str, lib: LibrarySpec, here: PathKey, raw: str | RevisionSpec
    ) -> Revision:
        if isinstance(raw, str):
            kind = SourceKind.PYPI if lib.pypi is not None else SourceKind.GIT
            return Revision(rev=raw, kind=kind, label=raw)
        if (raw.pypi is None) == (raw.git is None):
            raise self.fail(
                here,
                f"libraries.{name}.versions[{here[-1]}] needs exactly one of 'pypi:' and 'git:'",
            )
        if raw.git is not None:
            if lib.git is None:
                raise self.fail(
                    (*here, "git"),
                    f"revision '{_e(raw.git)}' is a git revision but library '{name}' has no "
                    "'git:' source; add one",
                )
            rev, kind = raw.git, SourceKind.GIT
        else:
            assert raw.pypi is not None
            if lib.pypi is None:
                raise self.fail(
                    (*here, "pypi"),
                    f"version '{_e(raw.pypi)}' is a PyPI version but library '{name}' has no "
                    "'pypi:' source; add one",
                )
            rev, kind = raw.pypi, SourceKind.PYPI
        return Revision(
            rev=rev,
            kind=kind,
            label=raw.label or rev,
            requires=tuple(raw.requires),
            note=raw.note,
        )

    def _ref(self, here: PathKey, what: str, name: str, known: Iterable[str], where: str) -> None:
        known = list(known)
        if name not in known:
            hint = did_you_mean(name, known) or f"; declare it under '{where}'"
            raise self.fail(here, f"{what} {named(name)} is not declared{hint}")

    def _repro(
        self,
        name: str,
        bases: Mapping[str, Base],
        gpus: Mapping[str, GpuType],
        libraries: Mapping[str, Library],
    ) -> Repro:
        r = self.spec.repros[name]
        here = ("repros", name)
        script, problem = values.script_path(self.root, r.script)
        if problem is not None:
            # A blank name is shown as written (`' '`, `'\t'`): excerpting it left `''`.
            shown = f"'{_e(r.script)}'" if r.script.strip() else repr(r.script[:20])
            raise self.fail((*here, "script"), f"script {shown} {problem}")
        if script is None:
            raise self.fail(
                (*here, "script"),
                f"script '{_e(r.script)}' of repro '{name}' does not exist (looked in "
                f"{display_name(str(self.root))}); create it or fix the path",
            )
        for i, g in enumerate(r.gpus):
            self._ref((*here, "gpus", i), "GPU type", g, gpus, "gpus")
        for i, b in enumerate(r.bases):
            self._ref((*here, "bases", i), "base", b, bases, "images")
        self._no_dupes((*here, "gpus"), r.gpus, "GPU type")
        self._no_dupes((*here, "bases"), r.bases, "base")
        libs: dict[str, tuple[str, ...]] = {}
        for lib_name, sel in r.libraries.items():
            lhere = (*here, "libraries", lib_name)
            if lib_name not in libraries:
                hint = did_you_mean(lib_name, libraries) or "; declare it under 'libraries'"
                raise self.fail(lhere, f"library {named(lib_name)} is not declared{hint}", key=True)
            lib = libraries[lib_name]
            if sel == "all":
                libs[lib_name] = tuple(rv.rev for rv in lib.revisions)
                continue
            chosen: list[str] = []
            for i, rev in enumerate(sel):
                try:
                    chosen.append(lib.revision(rev).rev)
                except KeyError:
                    hint = undeclared_hint(rev, lib.revisions, lib_name)
                    raise self.fail(
                        (*lhere, i),
                        f"revision {named(rev)} is not declared for library '{_e(lib_name)}'{hint}",
                    ) from None
            self._no_dupes(lhere, chosen, "revision")
            libs[lib_name] = tuple(chosen)
        try:
            digest = script_digest(script)
        except CodeTooLarge as exc:
            raise self.fail((*here, "script"), exc.why(self.root)) from None
        except OSError as exc:
            raise self.fail(
                (*here, "script"),
                f"script '{_e(r.script)}' cannot be read ({exc.strerror or exc}); fix its "
                "permissions",
            ) from None
        return Repro(
            name=name,
            script=script,
            script_digest=digest,
            issue=r.issue,
            description=r.description,
            gpus=tuple(r.gpus),
            bases=tuple(r.bases),
            libraries=libs,
            timeout_s=r.timeout or self.spec.defaults.timeout,
            params=dict(r.params),
            key_metric=r.key_metric,
            key_metric_where=str(self.loc.mark((*here, "key_metric"))) if r.key_metric else "",
            needs=tuple(r.needs) if r.needs is not None else None,
            isolate=r.isolate,
            calibrate=r.calibrate,
        )

    def _no_dupes(self, here: PathKey, items: Sequence[str], what: str) -> None:
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item in seen:
                raise self.fail((*here, i), f"{what} '{_e(item)}' is listed twice; remove one")
            seen.add(item)

    def _rule(
        self,
        here: PathKey,
        rule: RuleSpec,
        bases: Mapping[str, Base],
        gpus: Mapping[str, GpuType],
        libraries: Mapping[str, Library],
        repros: Mapping[str, Repro],
        *,
        full: bool,
    ) -> Rule:
        section = str(here[0])
        if rule.repro is not None:
            self._ref((*here, "repro"), "repro", rule.repro, repros, "repros")
        if rule.gpu is not None:
            self._ref((*here, "gpu"), "GPU type", rule.gpu, gpus, "gpus")
        if rule.base is not None:
            self._ref((*here, "base"), "base", rule.base, bases, "images")
        for lib_name, rev in rule.libraries.items():
            lhere = (*here, "libraries", lib_name)
            self._ref(lhere, "library", lib_name, libraries, "libraries")
            try:
                libraries[lib_name].revision(rev)
            except KeyError:
                hint = undeclared_hint(rev, libraries[lib_name].revisions, lib_name)
                raise self.fail(
                    lhere,
                    f"revision {named(rev)} is not declared for library '{_e(lib_name)}'{hint}",
                ) from None
        if full:
            if rule.repro is None or rule.gpu is None:
                raise self.fail(
                    here,
                    f"{section}[{here[1]}] must name 'repro' and 'gpu' (and 'base' "
                    "and 'libraries' when the repro spans them)",
                )
            repro = repros[rule.repro]
            if rule.base is None and len(repro.bases) > 1:
                # The first base would be taken, silently: which one was meant is unsaid.
                raise self.fail(
                    here,
                    f"{section}[{here[1]}] must name 'base': repro '{_e(rule.repro)}' "
                    f"spans {_e(', '.join(repro.bases), 80)}",
                )
            missing = [lib for lib in repro.libraries if lib not in rule.libraries]
            if missing:
                raise self.fail(
                    here,
                    f"{section}[{here[1]}] must pin every library repro "
                    f"'{_e(rule.repro)}' spans; missing: {_e(', '.join(missing), 80)}",
                )
            extra = [lib for lib in rule.libraries if lib not in repro.libraries]
            if extra:
                raise self.fail(
                    (*here, "libraries", extra[0]),
                    f"repro '{_e(rule.repro)}' does not span "
                    f"library '{_e(extra[0])}'; add it to repros.{rule.repro}.libraries first",
                    key=True,
                )
        elif not (rule.repro or rule.gpu or rule.base or rule.libraries):
            raise self.fail(here, f"{section}[{here[1]}] matches every cell; narrow it down")
        return Rule(
            repro=rule.repro,
            gpu=rule.gpu,
            base=rule.base,
            libraries=dict(rule.libraries),
            where=str(self.loc.mark(here)),
        )


def _e(value: object, limit: int = 64) -> str:
    """A value quoted in a message: printable, one line, bounded."""
    return excerpt(value, limit)


def _release(label: str) -> object:
    """A PyPI version as pip compares it (`1.0` and `1.0.0` alike), else as written."""
    return pep440(label) or ("pypi", label)
