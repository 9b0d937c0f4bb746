"""Fleet mode: porch runs on stateless worker hosts that pull tasks from NATS JetStream (docs/operations.md,
"Fleet mode").

The ingest host keeps everything that owns the truth (watcher, settling, validation, dedupe, SQLite state,
status files, moves, ``out/``); the broker only carries work, so losing it costs re-runs, never intents::

      ingest host (conductor-loop run --executor fleet)              worker hosts (conductor-loop worker)
    ┌───────────────────────────────────────────────┐
    │ watch → settle → queue → claim (tasks table)  │   CL_<NAME>_TASKS     ┌──────────────────────────────┐
    │        └─► publish Task (Nats-Msg-Id=task id) ├──► work-queue stream ─┼► pull 1 per free slot        │
    │                                               │   consumer "workers"  │  check sha256, run porch     │
    │                                               │   (ack_wait = lease)  │  (private temp out dir),     │
    │                                               │                       │  in_progress() every lease/3,│
    │                                               │   CL_<NAME>_RESULTS   │  self-fence on a lost lease, │
    │ accept (in flight? sha256 now? archive safe?) ◄──  work-queue stream ◄┼─ publish Result + archive,   │
    │  → install package, status, sync, commit, move│   consumer "ingest"   │  then ack the task           │
    └───────────────────────────────────────────────┘                       └──────────────┬───────────────┘
                                                      CL_<NAME>_WORKERS (KV) ◄─ heartbeat ┘ (fleet status)

Modules: :mod:`.protocol` (names, records, encoding), :mod:`.archive` (the result archive, packed and
checked), :mod:`.broker` (connecting, ensuring streams/consumers/KV, the limits check), :mod:`.worker` (the
worker host), :mod:`.status` (``fleet status``); the ingest side is :mod:`.bridge` and :mod:`.ingest`.
The claim is the table of tasks out (:mod:`.flights`, saved in ``.conductor/fleet-inflight.json`` before a
task is published); the recorder stays the only writer of the SQLite state's intent rows.
"""
