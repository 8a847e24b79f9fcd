"""Production gunicorn settings. Requests mostly wait on CloudAgent, so threads, not processes,
carry the concurrency: gthread workers, a few per core, many threads each."""

import glob
import os
import shutil
import sys
import tempfile

bind = os.environ.get("WIDGET_BIND", "127.0.0.1:8000")
# `asgi` (the default): each worker runs an event loop that holds every open panel's event
# stream as a coroutine, and the Flask app in a pool of WIDGET_THREADS threads (webapp.push,
# docs/architecture.md). `gthread` serves the same app without the live stream (panels then
# show what CloudAgent said when they open).
worker_class = os.environ.get("WIDGET_WORKER_CLASS", "asgi")
if worker_class not in ("asgi", "gthread"):
    sys.exit(f"configuration error: WIDGET_WORKER_CLASS: asgi or gthread, not {worker_class!r}")
workers = int(os.environ.get("WIDGET_WORKERS", "4"))
# A save waits ~0.3 s on CloudAgent: 200 agents saving at once need ~200 threads in flight.
_threads = int(os.environ.get("WIDGET_THREADS", "64"))
threads = _threads if worker_class == "gthread" else 1  # asgi: the bridge's pool (wsgi.py)
# Open connections per worker, event streams included: 2,000 open panels on 2 workers with
# room for saves and reconnects (each is one file descriptor: `ulimit -n` above the total).
worker_connections = int(os.environ.get("WIDGET_WORKER_CONNECTIONS", "2500"))
# One listening socket per worker: the kernel spreads connections evenly, where a shared
# socket lets one busy worker keep most keep-alive connections while the others idle.
reuse_port = True
# Longer than CloudAgent's connect + read timeouts, so a slow upstream gets an answer to the
# agent rather than a killed worker.
timeout = 30
graceful_timeout = 20
keepalive = 5
# Request limits, stated rather than left to defaults. A launch link is a few hundred bytes
# (its signature 64); 4094 leaves room for the CRM's own parameters. Browsers send about 20
# headers, a load balancer adds a few. Past a limit gunicorn answers 414 or 431 itself, with a
# bare page of its own and none of the app's security headers (gunicorn has no hook for
# them): the TLS terminator adds those (docs/deployment.md, "In front of gunicorn").
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
# The app logs one structured line per request itself, without the query string (launch links
# carry a signature and call identifiers), so gunicorn's access log stays off.
accesslog = None
errorlog = "-"
# The runtime control socket is one fixed path per user: several masters on a host would fight.
control_socket_disable = True
# Each worker builds its own app: one requests.Session and SQLite connection per process.
preload_app = False

# Metrics (WIDGET_METRICS_TOKEN set): each worker writes its counts to files in one folder
# that a scrape adds up, so any worker's /metrics speaks for the whole instance. Set before the
# workers import prometheus_client; one folder per master unless the operator names one.
_METRICS_DIR_OURS = False
if os.environ.get("WIDGET_METRICS_TOKEN") and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="widget-metrics-")
    _METRICS_DIR_OURS = True


def _metrics_dir():
    return (
        os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if os.environ.get("WIDGET_METRICS_TOKEN")
        else None
    )


_DEMO = not os.environ.get("WIDGET_CLOUDAGENT_USERNAME")
if _DEMO:
    # Demo mode keeps the simulator's calls in process memory: one worker must serve them all.
    workers = 1


def when_ready(server):
    # gunicorn's own "Listening at:" is empty with reuse_port (each worker opens its own
    # socket, the master none): say where the service is, and with how many workers.
    server.log.info(
        "disposition widget listening on http://%s (%d worker%s x %d threads%s)",
        bind,
        workers,
        "" if workers == 1 else "s",
        _threads,
        ", demo mode: one worker holds the simulator's calls" if workers == 1 and _DEMO else "",
    )
    if not os.environ.get("WIDGET_CLOUDAGENT_USERNAME"):
        port = bind.rpartition(":")[2]
        print(
            "\n  Demo mode (no WIDGET_CLOUDAGENT_USERNAME): CloudAgent is the built-in simulator."
            f"\n  Open the demo CRM page: http://localhost:{port}/demo\n",
            flush=True,
        )


def on_starting(server):
    directory = _metrics_dir()
    if directory:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        # Counts of an earlier run of this master would be added to this one's.
        for stale in glob.glob(os.path.join(directory, "*.db")):
            os.remove(stale)
    # The instance's first start checks the settings and the audit database, strictly: a wrong
    # URL stops it with one line. Workers booted later (one killed, a reload) then start even
    # while a store is away: a database that blinks must not end the instance for good.
    from webapp import MASTER_CHECKED, check_start_up
    from webapp.config import ConfigError

    try:
        check_start_up()
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr, flush=True)
        sys.exit(3)
    os.environ[MASTER_CHECKED] = str(os.getpid())


def post_worker_init(worker):
    # Each worker replays the audit journal, closes rows a lost worker left open and settles
    # unknown ones, in a thread of its own (webapp.audit.log, maintain()).
    app = getattr(worker, "asgi", None) or getattr(worker, "wsgi", None)
    audit = getattr(app, "extensions", {}).get("audit")
    if audit is not None:
        audit.start_maintenance()
    # A graceful stop (SIGTERM, a restart after max_requests) ends the open event streams at
    # once rather than waiting graceful_timeout on them (webapp.push.router).
    watch = getattr(app, "watch_worker", None)
    if watch is not None:
        watch(lambda: worker.alive)


def child_exit(server, worker):
    if _metrics_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _METRICS_DIR_OURS:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
