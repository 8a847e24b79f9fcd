"""`make drill`: the fault drill of issue 22, about two minutes, and its reconciliation table.

Real Redis and PostgreSQL (started here on loopback ports, bench/servers.py), two instances of
the production gunicorn config (2 workers x 16 threads each, as the drill that found the
issue), CloudAgent the simulator in this process. Every step is bounded and stops by itself:

1. baseline: saves on both instances;
2. a worker killed mid-save (CloudAgent slow): its rows are left open;
3. CloudAgent faults: HTTP 502 (never applied) and answers lost past the read timeout
   (applied): the agent is told "result unknown";
4. PostgreSQL stopped while saves are in CloudAgent's hands (their answers arrive after),
   a worker of each instance killed during the outage, saves refused meanwhile, PostgreSQL
   started again after 20 s: how long until each instance saves again, unrestarted;
5. the agents save again every call whose answer was unknown, after hanging it up (as the
   panel tells them to); the service settles what it can.

Then every save is reconciled with what CloudAgent holds and what the audit trail says:
saves attempted, told success, lost (told success, not in CloudAgent or the trail),
mis-reported (told "nothing was sent", yet CloudAgent has it; or told one outcome and the
trail says another), untracked (Sets CloudAgent received without an audit row), rows left
open, unknown rows settled or not, the widget's 5xx, the upstream 502s and their WARNING
lines, and the recovery time. Exit status 0 only when nothing was lost, mis-reported or
untracked, no row stays open, and both instances came back within a minute.

    .venv/bin/python -m bench.drill [--outage 20]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from webapp.simulator import Simulator, start_server

from .common import children, free_port, launch_path, say
from .servers import Missing, Postgres, Redis
from .services import GUNICORN, Service, wait_gunicorn

WORKERS, THREADS = 2, 16
CONNECT_TIMEOUT, READ_TIMEOUT = 1.0, 2.0  # short, so a lost worker's rows close in ~42 s
LAUNCH_SECRET = "drill-launch-secret-0123456789"  # noqa: S105 (a throw-away drill)
USER, KEY, DID = "drill", "drill-api-key-0123456789", "914071327663"
AGENTS = [f"drill{n:02d}" for n in range(1, 33)]
DISPOSITIONS = ["Interested", "Not interested", "Wrong number", "Sale closed"]
BACK_WITHIN = 60.0


@dataclass
class Save:
    phase: str
    instance: str
    agent: str
    ucid: str
    disposition: str
    request_id: str
    status: int | None = None  # None: no answer (the worker died)
    told: str = ""  # success, nothing_sent, unknown, refused


class Instance:
    def __init__(self, name: str, upstream: str, redis_url: str, database_url: str) -> None:
        self.name = name
        self.data = Path(tempfile.mkdtemp(prefix=f"drill-{name}-"))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("WIDGET_")} | {
            "WIDGET_BIND": f"127.0.0.1:{port}",
            "WIDGET_WORKERS": str(WORKERS),
            "WIDGET_THREADS": str(THREADS),
            "WIDGET_INSTANCE_NAME": name,
            "WIDGET_DATA_DIR": str(self.data),
            "WIDGET_REDIS_URL": redis_url,
            "WIDGET_DATABASE_URL": database_url,
            "WIDGET_CLOUDAGENT_URL": upstream,
            "WIDGET_CLOUDAGENT_USERNAME": USER,
            "WIDGET_CLOUDAGENT_API_KEY": KEY,
            "WIDGET_CLOUDAGENT_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
            "WIDGET_CLOUDAGENT_READ_TIMEOUT": str(READ_TIMEOUT),
            "WIDGET_SECRET_KEY": "drill-secret-key-0123456789",
            "WIDGET_LAUNCH_SECRET": LAUNCH_SECRET,
            "WIDGET_ALLOW_INSECURE": "1",
            "WIDGET_SAVES_PER_MINUTE": "1000",
            "WIDGET_TRUSTED_PROXIES": "127.0.0.1",  # the drill's request ids are kept
        }
        self.service = Service(
            name, [GUNICORN, "-c", "gunicorn.conf.py", "wsgi:app"], env, self.data / "log"
        )
        wait_gunicorn(self.service, self.url + "/readyz", WORKERS, timeout=120)

    def open(self, ucid: str, agent: str) -> dict[str, str]:
        page = requests.get(self.url + launch_path(ucid, agent, DID, LAUNCH_SECRET), timeout=60)
        page.raise_for_status()
        return {
            name: re.search(rf'name="{name}"[^>]*value="([^"]*)"', page.text).group(1)
            for name in ("context", "csrf_token")
        }

    def save(self, record: Save, panel: dict[str, str]) -> Save:
        try:
            answer = requests.post(
                self.url + "/disposition/save",
                data=panel | {"disposition": record.disposition, "comments": ""},
                headers={"HX-Request": "true", "X-Request-ID": record.request_id,
                         "Connection": "close"},
                timeout=60,
            )  # fmt: skip
        except requests.RequestException:
            record.told = "unknown"  # the panel says "Result unknown" when we do not answer
            return record
        record.status = answer.status_code
        outcome = re.search(r'data-outcome="([a-z_]+)"', answer.text)
        kind = outcome.group(1) if outcome else ""
        if kind in ("queued", "saved"):
            record.told = "success"
        elif 'data-result-unknown="true"' in answer.text:
            record.told = "unknown"
        elif "nothing was sent" in answer.text.lower():
            record.told = "nothing_sent"
        else:
            record.told = "refused"
        return record

    def log_lines(self) -> list[dict]:
        lines = []
        for line in self.service.log_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"level": "GUNICORN", "message": line})
        return lines

    def alive(self) -> bool:
        return self.service.proc.poll() is None


class Drill:
    def __init__(self, outage: float) -> None:
        self.outage = outage
        self.saves: list[Save] = []
        self.lock = threading.Lock()
        self.ids = iter(range(10**6))
        self.sim = Simulator(seed=False, wrapup_seconds=3600)
        self.sim.add_account(USER, KEY, agents=set(AGENTS), dids={DID},
                             dispositions=DISPOSITIONS, pause_reasons=["Break"])  # fmt: skip
        self.recovery: dict[str, float | None] = {}

    def one(self, phase: str, instance: Instance, agent: str, disposition: str = "Interested",
            ucid: str | None = None) -> Save:  # fmt: skip
        """A save on a fresh call (or `ucid`'s), opened on `instance` and saved there."""
        ucid = ucid or self.sim.start_call(agent, DID).ucid
        with self.lock:
            rid = f"drill-{phase}-{next(self.ids):05d}"
        record = Save(phase, instance.name, agent, ucid, disposition, rid)
        try:
            panel = instance.open(ucid, agent)
        except requests.RequestException:
            record.told = "refused"  # no panel: nothing was tried
            return record
        with self.lock:
            self.saves.append(record)
        return instance.save(record, panel)

    def many(self, phase: str, instances: list[Instance], count: int, **kwargs) -> list[Save]:
        def go(i: int) -> Save:
            agent = AGENTS[i % len(AGENTS)]
            return self.one(phase, instances[i % len(instances)], agent,
                            DISPOSITIONS[i % len(DISPOSITIONS)], **kwargs)  # fmt: skip

        with ThreadPoolExecutor(max(1, count)) as pool:
            return list(pool.map(go, range(count)))

    def run(self, a: Instance, b: Instance, pg: Postgres) -> None:
        both = [a, b]
        say("drill: baseline")
        self.many("baseline", both, 16)

        say("drill: a worker of widget-a killed mid-save")
        self.sim.set_latency(1.5)  # within the read timeout: the other worker's saves succeed
        batch = threading.Thread(target=self.many, args=("killed", [a], 12))
        batch.start()
        time.sleep(0.7)  # rows written, Sets in CloudAgent's hands
        os.kill(children(a.service.proc.pid)[0], signal.SIGKILL)
        batch.join(120)
        self.sim.set_latency(0.0)

        say("drill: CloudAgent answers 502, or too late")
        self.sim.add_fault("Set", "http_502", count=6)
        self.sim.add_fault("Set", "lost_answer", count=4, delay=READ_TIMEOUT + 1.5)
        self.many("upstream", both, 10)

        say(f"drill: PostgreSQL stopped for {self.outage:g} s, a worker of each instance killed")
        self.sim.set_latency(1.5)
        batch = threading.Thread(target=self.many, args=("outage-answered", both, 12))
        batch.start()
        time.sleep(0.5)  # the rows are written, CloudAgent has the Sets
        pg.stop()
        stopped = time.monotonic()
        batch.join(120)  # answered after the database died: journalled
        self.sim.set_latency(0.0)
        time.sleep(1.0)
        for instance in both:
            os.kill(children(instance.service.proc.pid)[0], signal.SIGKILL)
        while time.monotonic() - stopped < self.outage:
            self.many("outage", both, 2)
            time.sleep(0.5)
        pg.start()
        back = time.monotonic()
        say("drill: PostgreSQL back; waiting for each instance to save again")
        for instance in both:
            self.recovery[instance.name] = None
            while time.monotonic() - back < BACK_WITHIN + 30 and instance.alive():
                if self.one("recovery", instance, AGENTS[0]).told == "success":
                    self.recovery[instance.name] = time.monotonic() - back
                    break
                time.sleep(0.25)

    def settle(self, a: Instance, b: Instance, audit) -> None:
        """The agents save again each call whose answer was unknown, after it ended, once the
        rows a lost worker left open are closed (the panel says "Save again")."""
        say("drill: waiting for rows a lost worker left open to be closed (about 42 s + a round)")
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and any(
            row["finished_at"] is None for row in audit.rows(unsettled=True)
        ):
            time.sleep(1.0)
        unknown = [s for s in self.saves if s.told == "unknown"]
        say(f"drill: {len(unknown)} calls with an unknown answer hung up and saved again")
        instances = {a.name: a, b.name: b}
        for save in {s.ucid: s for s in unknown}.values():
            self.sim.hang_up(save.ucid)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda s: self.one("again", instances[s.instance], s.agent,
                                             s.disposition, ucid=s.ucid),
                          {s.ucid: s for s in unknown}.values()))  # fmt: skip
        say("drill: waiting for a maintenance round to settle unknown rows (at most 40 s)")
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and list(audit.rows(unsettled=True)):
            time.sleep(1.0)


def reconcile(drill: Drill, instances: list[Instance], audit) -> tuple[list[tuple], bool]:
    rows = list(audit.rows())
    by_id = {row["request_id"]: row for row in rows}
    saves = drill.saves
    told = {kind: [s for s in saves if s.told == kind] for kind in
            ("success", "nothing_sent", "unknown", "refused")}  # fmt: skip
    lost = mis = 0
    for save in told["success"]:
        row = by_id.get(save.request_id)
        call = drill.sim.get_call(save.ucid)
        holds = call.disposition or call.queued
        if row is None or row["outcome"] not in ("queued", "saved") or holds is None:
            lost += 1
    by_call: dict[str, list[Save]] = {}
    for save in saves:
        by_call.setdefault(save.ucid, []).append(save)
    for ucid, attempts in by_call.items():
        call = drill.sim.get_call(ucid)
        if all(s.told == "nothing_sent" for s in attempts) and (call.disposition or call.queued):
            mis += 1
    for save in saves:
        row = by_id.get(save.request_id)
        if row is None or save.told in ("success", "nothing_sent"):
            continue
        if (save.told == "unknown") != (row["outcome"] == "unknown"):
            mis += 1
    sets = drill.sim.stats()["requests"]["Set"]
    untracked = max(0, sets - len(rows))
    still_open = sum(1 for r in rows if r["finished_at"] is None)
    unknown_rows = [r for r in rows if r["outcome"] == "unknown"]
    settled: dict[str, int] = {}
    for row in unknown_rows:
        key = row["settled"] or "unsettled"
        settled[key] = settled.get(key, 0) + 1
    lines = [line for i in instances for line in i.log_lines()]
    journalled = sum("kept in the journal" in str(x.get("message")) for x in lines)
    replayed = sum("completed from the journal" in str(x.get("message")) for x in lines)
    warned_502 = sum(
        x.get("level") == "WARNING" and "answered HTTP 502" in str(x.get("message")) for x in lines
    )
    boot_failures = sum("failed to boot" in str(x.get("message")).lower() for x in lines)
    statuses = [s.status for s in saves if s.status is not None]
    nothing_503 = sum(1 for s in saves if s.status == 503 and s.told == "nothing_sent")
    other_5xx = sum(1 for code in statuses if code >= 500) - nothing_503
    worker_lost = sum(1 for r in rows if r["reason"] == "worker_lost")
    recovery = ", ".join(
        f"{name} {'never' if t is None else f'{t:.1f} s'}" for name, t in drill.recovery.items()
    )
    alive = sum(i.alive() for i in instances)
    table = [
        ("saves attempted", len(saves), ""),
        ("told success (queued or saved)", len(told["success"]), ""),
        ("told nothing was sent (audit log unreachable: 503)", len(told["nothing_sent"]), ""),
        ("told result unknown (502, late answer, worker killed)", len(told["unknown"]), ""),
        ("told refused (CloudAgent said no)", len(told["refused"]), "0"),
        ("lost (told success; not in CloudAgent or not in the trail)", lost, "0"),
        ("mis-reported", mis, "0"),
        ("untracked (Sets CloudAgent got without an audit row)", untracked, "0"),
        ("audit rows / Sets CloudAgent received", f"{len(rows)} / {sets}", "rows >= Sets"),
        ("open rows at the end", still_open, "0"),
        ("rows closed as worker_lost", worker_lost, "> 0"),
        ("completions journalled / replayed from the journal", f"{journalled} / {replayed}",
         "equal"),
        ("unknown rows by settlement", ", ".join(f"{k} {v}" for k, v in sorted(settled.items())),
         ""),
        ("widget 5xx other than 503 nothing-sent", other_5xx, "0"),
        ("upstream 502 answers / their WARNING lines", f"6 / {warned_502}",
         "1-4 (a line a minute per worker)"),
        ("recovery after PostgreSQL returned", recovery, f"< {BACK_WITHIN:g} s"),
        ("instances alive / worker boot failures", f"{alive} / {boot_failures}", "2 / 0"),
    ]  # fmt: skip
    ok = (
        lost == mis == untracked == still_open == other_5xx == boot_failures == 0
        and alive == 2
        and journalled == replayed
        and all(t is not None and t < BACK_WITHIN for t in drill.recovery.values())
    )
    return table, ok


def render(table: list[tuple], took: float, outage: float) -> str:
    width = max(len(row[0]) for row in table)
    out = [
        f"fault drill: 2 instances x {WORKERS} workers x {THREADS} threads, Redis + PostgreSQL, "
        f"PostgreSQL away {outage:g} s; {took:.0f} s in all",
        "",
        f"{'measure':<{width}}  {'value':<28}  expected",
    ]
    out += [f"{name:<{width}}  {value!s:<28}  {expected}" for name, value, expected in table]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.drill", description=__doc__)
    parser.add_argument("--outage", type=float, default=20.0, help="seconds PostgreSQL is away")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        redis, pg = Redis(), Postgres()
    except Missing as missing:
        sys.exit(f"drill: needs {missing}")
    drill = Drill(args.outage)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per CloudAgent call
    upstream = start_server(drill.sim)
    instances: list[Instance] = []
    audit = None
    try:
        say("drill: starting two instances")
        instances = [Instance(n, upstream.url, redis.url, pg.url) for n in ("widget-a", "widget-b")]
        drill.run(*instances, pg)
        from webapp.audit import AuditLog

        audit = AuditLog(pg.url)
        drill.settle(*instances, audit)
        table, ok = reconcile(drill, instances, audit)
    finally:
        if audit is not None:
            audit.close()
        for instance in instances:
            instance.service.stop()
        upstream.stop()
        redis.stop()
        pg.remove()
    print(render(table, time.monotonic() - started, args.outage))
    if not ok:
        for instance in instances:
            say(instance.service.tail(40))
        sys.exit("drill: FAILED (see the table)")


if __name__ == "__main__":
    main()
