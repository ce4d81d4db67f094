"""`pausectl reconcile ENV... --watch`: the always-on controller (docs/controller.md).

loop.py runs the ticks (reload the state, plan, apply or report, publish, sleep until the
earlier of --interval and the next transition), lease.py is the leader lease that keeps a
second replica a hot standby, source.py reads the state repo (a directory, a git ref, or a git
URL fetched every tick), http.py serves /metrics, /healthz and /readyz.
"""
