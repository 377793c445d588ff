"""Ray: the only package that imports `ray` (`pip install 'repromatrix[ray]'`).

- `cluster.py`: GPU types as custom resources, `ray start` for a node, the cluster as a host
- `node.py`: what a Ray worker does with one cell (the node's executor, its GPU, a record)
- `slots.py`: the run's slots as Ray actors, one per scheduler slot
- `executor.py`: the driver side, `--executor ray`
"""
