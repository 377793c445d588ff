"""Docker: the only package that imports the Docker SDK (`pip install 'repromatrix[docker]'`).

- `engine.py`: the connection to the engine (and the SDK's rough edges around it)
- `janitor.py`: labels on what we make, and the sweeper of what crashed runs left
- `images.py`: base images per the pull policy, environment images built once
- `executor.py`: one container per cell, judged like any other run
- `gpu_runtime.py`: whether the engine hands GPUs to containers, and the untestable
  outcome of a GPU cell where it does not
"""

from repromatrix.executors.docker.engine import engine_client, unreachable_message
from repromatrix.executors.docker.executor import DockerExecutor
from repromatrix.executors.docker.gpu_runtime import NO_NVIDIA_RUNTIME
from repromatrix.executors.docker.janitor import clean_leftovers

__all__ = [
    "NO_NVIDIA_RUNTIME",
    "DockerExecutor",
    "clean_leftovers",
    "engine_client",
    "unreachable_message",
]
