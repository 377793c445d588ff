"""Ray: the only package that imports `ray` (`pip install 'repromatrix[ray]'`).

- `cluster.py`: GPU types as custom resources, `ray start` for a node, the cluster as a host
- `node.py`: what a Ray worker does with one cell (the node's executor, its GPU, a record)
- `slots.py`: the run's slots as Ray actors, one per scheduler slot
- `driver.py`: this process joined to the cluster as its driver, once per run
- `placement.py`: where a cell may still go (nodes a GPU type avoids, CPUs left)
- `executor.py`: the driver side, `--executor ray`
"""
