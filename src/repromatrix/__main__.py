"""`python -m repromatrix` and the `repromatrix` command."""

import signal
import sys
from typing import NoReturn


def run() -> NoReturn:
    try:
        from repromatrix.cli import main
        from repromatrix.process_end import own_process

        own_process()  # a command may end this process at once (`process_end.end_now`)
        code = main()
    except KeyboardInterrupt:  # Ctrl-C while importing, before `main` handles it itself
        sys.stderr.write("repromatrix: interrupted\n")
        code = 130
    # The command has ended and said how: a Ctrl-C while the interpreter shuts down
    # (joining threads) would only add a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise SystemExit(code)


if __name__ == "__main__":
    run()
