"""What noxfile.py's sessions are built from, beside it: nox imports the noxfile alone (it
puts this folder on sys.path itself). Stdlib and nox only, never repromatrix, which nox's
venv gets only once a session installs it.

- signals.py:            SIGTERM/SIGHUP to nox passed on to the command it runs
- posargs.py:            the posargs, their paths made the caller's, the flags sessions pass on
- interpreters.py:       the cells' interpreter, nox's venv, and the packages it sees of the first
- results_state.py:      what a run recorded, told from what it did not (the results' files)
- install.py:            repromatrix installed into nox's venv when it is not as pip left it
- venv_requirements.py:  run by nox's venv: what it has of repromatrix's requirements
"""
