"""bdr-agent: the appliance's block-level image store.

A library first (Store, backup_volume, restore_point, PointReader, verify_points,
rollup, collect_garbage, select_points), a command line second (agent.cli).
"""

__version__ = "0.1.0"
