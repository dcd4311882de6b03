"""The PostgreSQL side of the store (issue 25, docs/CLUSTER.md): its migrations (a baseline equal to SQLite's
schema at 0022, then one twin per later SQLite migration), their runner, and the driver seam prototype.

Nothing here is wired into orvad's start-up yet: SQLite (orvad/store/db.py) is the only driver in use.
"""
