"""Several machines: `falkit serve` replicas and `falkit worker` processes on one PostgreSQL.

::

    falkit serve --no-worker ─┐  POST /images: check, journal, enqueue ──▶ PgQueuer (queue.py)
    falkit serve --no-worker ─┤  SSE: the job's events from the bus    ◀── falkit worker × N
    (any replica: webhooks) ──┘  a Fal webhook: passed to the worker       run_job: submit once,
                                 that follows the job, over the bus        follow, finish
             └───────── PostgreSQL: journal, queue, events (LISTEN/NOTIFY) ─────────┘
                        S3-compatible storage: images (falkit.storage)

* **Work** goes through PgQueuer (an existing PostgreSQL job queue; see docs/adr/0001):
  one ``run_job`` task per falkit job (dedupe key: the job id), heartbeats while it runs, and
  a dead or paused worker's task picked up again by another worker. Every task is idempotent:
  the journal's compare-and-set (pending → submitting) allows one submit whatever runs twice,
  a job with a request id is only followed, a completed one is left alone, and images are
  written create-only (falkit.storage).
* **Events** (bus.py) go to ``falkit_cluster.events`` with an increasing id and a small
  NOTIFY; each process holds one LISTEN connection and reads new rows after reconnecting, so
  none is lost. SSE on any replica reads a job's events there (``Last-Event-ID`` included).
* **The engine** is the same as on one machine; two seams connect it: ``JobEngine.sink``
  (every event also goes to the bus) and ``JobEngine.dispatcher`` (on API replicas a job is
  enqueued, not run, and its handle mirrors the bus: dispatch.py).
"""
