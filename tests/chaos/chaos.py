#!/usr/bin/env python3
"""Seeded chaos run of the toy pipeline (issue 16, docs/reliability.md "Chaos").

`swarr launch` runs the toy SFT -> RL -> eval pipeline with every service as a real process on
loopback. Once the RL stage has started, this script injects `--faults` faults at random moments
(seeded): kill -9 of a random service (a rollout server, the learner, the coordinator; launch
restarts it on its ports), SIGSTOP stalls (a rollout server stopped for longer than its lease,
or the learner for a few seconds, then SIGCONT) and network faults on loopback (netfaults.py):
delay (every packet of a service's connections held 50-400 ms each way for 2-4 s), loss (5-30 %
of them dropped for 2-4 s) and dropped connections (its established connections destroyed with
`ss -K`; for the coordinator and the learner, new ones to its port refused with a TCP reset for
0.5-3 s). A rollout's faults act on the connections it holds when the fault starts (found in
/proc) and on its own port; one it opens during the fault is not affected. For the network faults the
script re-runs itself in a network namespace of its own (`unshare -n`), so `swarr launch`, every
service and every rule live there and nothing else on the machine is touched. Each fault is
appended to faults.jsonl in the work dir when it ends. Then it waits for the run and checks:

  - the run completed (launch exits 0, summary.json, every stage done);
  - every RL step once: metrics.jsonl has steps 1..N in order;
  - 0 trajectory ids trained twice, and trained_ids.log holds exactly the ids of the surviving
    steps (trajectories.jsonl), each in one step;
  - groups_acked_never_trained == 0;
  - with --min-accuracy, the final eval accuracy is at least that;
  - at least --min-net-faults network faults, and the network faults acted on traffic: for each
    kind injected, at least one fault held packets (delay), saw packets (loss) or destroyed
    sockets (drop); rules that match nothing fail the run.

It prints one JSON line with the faults and the figures, and exits 1 naming each failed check.

  tests/chaos/chaos.py --swarr build/bin/swarr --seed 1 --faults 5          # short (ctest)
  tests/chaos/run_long.sh                                                   # long variant
  tests/chaos/chaos.py --check-only DIR --rl-steps N     # the checks again on a finished run
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import netfaults

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NETNS_ENV = "SWARR_CHAOS_IN_NETNS"
NET_KINDS = ("delay", "loss", "drop")


def pipeline_yaml(a):
    return f"""name: chaos
workers: {{max_sequences: 64, heartbeat_seconds: 0.3, lease_seconds: 2, progress_timeout_seconds: 3}}
stages:
  - name: sft
    train: {{micro_batch_tokens: 1024, max_seq_len: 64}}
    model: {{path: {SOURCE}/configs/models/tiny, dtype: float32}}
    data: {{format: synthetic, synthetic_task: sum_digits, chat_template: none, seed: 1}}
    optimizer: {{lr: 1.0e-3, weight_decay: 0.01, beta2: 0.99, warmup_steps: 10, schedule: cosine, min_lr_ratio: 0.1}}
    stop: {{max_steps: {a.sft_steps}}}
  - name: rl
    rl: {{prompts_per_step: 8, samples_per_prompt: 8, max_new_tokens: 4, reward: exact, clip_high: 0.28, max_importance_weight: 2.0, log_trajectories: true}}
    model: {{attention: {{window: 28}}}}
    data: {{format: synthetic, synthetic_task: sum_digits, chat_template: none, seed: 2}}
    optimizer: {{lr: 3.0e-5, grad_clip: 1.0}}
    stop: {{max_steps: {a.rl_steps}}}
    checkpoint: {{every_steps: {a.checkpoint_every}}}
  - name: eval
    eval: {{num_problems: {a.eval_problems}, greedy: true, max_new_tokens: 4}}
    model: {{attention: {{window: 28}}}}
    data: {{format: synthetic, synthetic_task: sum_digits, synthetic_size: {a.eval_problems}, chat_template: none, seed: 99}}
"""


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def json_lines(path):
    out = []
    for line in read(path).splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def pid_of(run, name):
    try:
        return int(read(f"{run}/pids/{name}.pid").strip())
    except ValueError:
        return 0


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def port_of(run, name):
    try:
        return int(read(f"{run}/ports/{name}.port").strip())
    except ValueError:
        return 0


def net_fault(nf, rng, run, name, fault):
    """One network fault on the connections of service `name`; fills `fault` in, returns when it ended
    (the rules removed), or a reason it could not be applied."""
    port = port_of(run, name)
    if port <= 0:
        return "no port file"
    if name.startswith("rollout"):
        # A rollout's traffic runs over connections it opened (to the coordinator and the learner):
        # the local ports of those, and its own port.
        ports = netfaults.local_ports_of(pid_of(run, name)) | {port}
    else:
        ports = {port}  # every connection to the coordinator or the learner
    if netfaults.established(ports) == 0:
        return "no connection"  # idle (e.g. the pipeline is ending): nothing to act on
    kind = fault["kind"]
    secs = rng.uniform(2.0, 4.0) if kind != "drop" else rng.uniform(0.5, 3.0)
    fault["ports"] = sorted(ports)
    fault["seconds"] = round(secs, 2)
    if kind == "delay":
        d = rng.uniform(0.05, 0.4)
        fault["delay_ms"] = round(d * 1000)
        held = nf.delayer.packets
        nf.delay(ports, d)
        time.sleep(secs)
        nf.clear()
        fault["packets_held"] = nf.delayer.packets - held
    elif kind == "loss":
        pr = rng.uniform(0.05, 0.3)
        fault["loss"] = round(pr, 3)
        nf.loss(ports, pr)
        time.sleep(secs)
        counts = nf.counted()
        fault["packets_seen"] = counts.get("", 0)
        fault["packets_dropped"] = counts.get("DROP", 0)
        nf.clear()
    else:
        # New connections are refused for the coordinator and the learner (they are reached at
        # their port); a rollout reconnects from new ports at once.
        fault["sockets_destroyed"] = nf.drop(ports, listen_port=None if name.startswith("rollout") else port)
        time.sleep(secs)
        fault["connections_refused"] = nf.counted().get("REJECT", 0)
        nf.clear()
    return ""


def check(a, run, faults, rc):
    """The checks of a finished run (module docstring); returns (failures, figures)."""
    failures = []
    summary = {}
    try:
        summary = json.loads(read(f"{run}/summary.json"))
    except ValueError:
        failures.append("no summary.json")
    if rc != 0:
        failures.append(f"swarr launch exited {rc}")
    stages = summary.get("stages", [])
    if [s.get("state") for s in stages] != ["done"] * 3:
        failures.append(f"stages not all done: {[s.get('state') for s in stages]}")
    steps = [l.get("step") for l in json_lines(f"{run}/stages/rl/metrics.jsonl")]
    if steps != list(range(1, a.rl_steps + 1)):
        failures.append(f"rl metrics.jsonl steps are {steps}, not 1..{a.rl_steps} once each")
    if summary.get("trajectory_ids_trained_twice", -1) != 0:
        failures.append(f"trajectory_ids_trained_twice = {summary.get('trajectory_ids_trained_twice')}")
    if summary.get("groups_acked_never_trained", -1) != 0:
        failures.append(f"groups_acked_never_trained = {summary.get('groups_acked_never_trained')}")
    history = {}
    for l in json_lines(f"{run}/stages/rl/trajectories.jsonl"):
        if l["id"] in history:
            failures.append(f"{l['id']} trained in steps {history[l['id']]} and {l['step']}")
        history[l["id"]] = l["step"]
    logged = [x for x in read(f"{run}/learner/trained_ids.log").splitlines() if x]
    if len(logged) != len(set(logged)):
        failures.append(f"trained_ids.log has {len(logged) - len(set(logged))} repeated ids")
    if set(logged) != set(history):
        failures.append(f"trained_ids.log ({len(set(logged))} ids) and the surviving steps "
                        f"({len(history)} ids) disagree: {len(set(logged) - set(history))} only in the log "
                        f"(e.g. {sorted(set(logged) - set(history))[:3]}), "
                        f"{len(set(history) - set(logged))} only in the steps")
    accuracy = stages[2].get("metrics", {}).get("accuracy") if len(stages) == 3 else None
    if a.min_accuracy >= 0 and (accuracy is None or accuracy < a.min_accuracy):
        failures.append(f"eval accuracy {accuracy} < {a.min_accuracy}")
    net = [f for f in faults if f["kind"] in NET_KINDS]
    if len(net) < a.min_net_faults:
        failures.append(f"only {len(net)} network faults, fewer than --min-net-faults {a.min_net_faults}")
    # The faults must act on traffic: rules on the wrong ports, or a delayer that is not bound, would
    # pass every check above. (One fault may meet an idle moment; all of a kind may not.)
    for kind, key in (("delay", "packets_held"), ("loss", "packets_seen"), ("drop", "sockets_destroyed")):
        of_kind = [f for f in net if f["kind"] == kind]
        if of_kind and not any(f.get(key) for f in of_kind):
            failures.append(f"no {kind} fault acted on traffic ({key} 0 in all {len(of_kind)})")
    by_kind = {}
    for f in faults:
        by_kind[f["kind"]] = by_kind.get(f["kind"], 0) + 1
    figures = {
        "rl_steps": len(steps), "eval_accuracy": accuracy, "faults_by_kind": by_kind,
        "restarts": sum(1 for f in faults if f["kind"] == "kill"),
        "stalls": sum(1 for f in faults if f["kind"] == "stop"),
        "net_faults": len(net),
        **{k: summary.get(k) for k in ("groups_dispatched", "groups_reassigned",
                                       "groups_redispatched_after_learner_restart",
                                       "groups_acked_never_trained", "groups_unused_at_stage_end",
                                       "groups_adopted_after_coordinator_restart",
                                       "trajectories_trained", "trajectories_dropped_stale",
                                       "trajectory_ids_trained_twice")},
    }
    return failures, figures


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--swarr", default=os.path.join(SOURCE, "build/bin/swarr"))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--faults", type=int, default=5)
    p.add_argument("--rollouts", type=int, default=2)
    p.add_argument("--sft-steps", type=int, default=60)
    p.add_argument("--rl-steps", type=int, default=30)
    p.add_argument("--checkpoint-every", type=int, default=3)
    p.add_argument("--eval-problems", type=int, default=50)
    p.add_argument("--gap", type=float, nargs=2, default=[0.3, 2.0], help="seconds between faults (uniform)")
    p.add_argument("--min-accuracy", type=float, default=-1)
    p.add_argument("--no-net", action="store_true",
                   help="no network faults (and no network namespace): kills and stalls only")
    p.add_argument("--min-net-faults", type=int, default=0, help="fail unless at least this many network faults ran")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--dir", default="")
    p.add_argument("--check-only", default="", metavar="DIR",
                   help="run no pipeline: the checks again on the work dir of a finished run")
    a = p.parse_args()

    if a.check_only:
        faults = json_lines(os.path.join(a.check_only, "faults.jsonl"))
        failures, figures = check(a, os.path.join(a.check_only, "run"), faults, 0)
        print(json.dumps({**figures, "failures": failures, "dir": a.check_only}))
        for f in failures:
            print("chaos: FAILED: " + f, file=sys.stderr)
        return 1 if failures else 0

    if not a.no_net and os.environ.get(NETNS_ENV) != "1":
        # Again, in a network namespace of its own (only its loopback; the faults touch nothing else).
        os.environ[NETNS_ENV] = "1"
        try:
            os.execvp("unshare", ["unshare", "--net", "--", sys.executable, os.path.abspath(__file__)] + sys.argv[1:])
        except OSError as e:
            print(f"chaos: FAILED: cannot run unshare --net ({e}); --no-net runs without network faults",
                  file=sys.stderr)
            return 1
    nf = None
    if not a.no_net:
        why = netfaults.probe()
        if why:
            print(f"chaos: FAILED: network faults unavailable here: {why} (--no-net runs without them)",
                  file=sys.stderr)
            return 1
        nf = netfaults.NetFaults()

    rng = random.Random(a.seed)
    work = a.dir or tempfile.mkdtemp(prefix="swarr_chaos_")
    os.makedirs(work, exist_ok=True)
    run = os.path.join(work, "run")
    config = os.path.join(work, "pipeline.yaml")
    with open(config, "w") as f:
        f.write(pipeline_yaml(a))
    log = open(os.path.join(work, "launch.log"), "w")
    fault_log = open(os.path.join(work, "faults.jsonl"), "w")
    t0 = time.time()
    launch = subprocess.Popen([a.swarr, "launch", "--config", config, "--run-dir", run, "--rollouts",
                               str(a.rollouts), "--max-restarts", str(a.faults + 5)],
                              stdout=log, stderr=subprocess.STDOUT)
    failures = []
    faults = []
    skipped = []  # network faults not applied (the service had no connection)
    try:
        # Faults start once the RL stage runs (its first step is logged).
        while not json_lines(f"{run}/stages/rl/metrics.jsonl"):
            if launch.poll() is not None or time.time() - t0 > a.timeout:
                failures.append("the rl stage never started")
                break
            time.sleep(0.1)
        rollouts = [f"rollout-{i}" for i in range(a.rollouts)]
        kinds = ["kill"] * 3 + ["stop"] + ([] if a.no_net else list(NET_KINDS))
        while not failures and len(faults) < a.faults and launch.poll() is None:
            time.sleep(rng.uniform(*a.gap))
            kind = rng.choice(kinds)
            name = rng.choice(rollouts + ["learner"] if kind == "stop" else rollouts + ["learner", "coordinator"])
            pid = pid_of(run, name)
            if pid <= 0 or not alive(pid):
                continue  # being restarted
            fault = {"t": round(time.time() - t0, 2), "kind": kind, "service": name,
                     "rl_steps_logged": len(json_lines(f"{run}/stages/rl/metrics.jsonl"))}
            if kind == "kill":
                os.kill(pid, signal.SIGKILL)
                # Until launch restarted it (a new pid), so that the next fault finds it.
                deadline = time.time() + 60
                while time.time() < deadline and pid_of(run, name) in (0, pid) and launch.poll() is None:
                    time.sleep(0.05)
            elif kind == "stop":
                # A rollout stopped for longer than its lease (2 s); the learner for 3 s.
                secs = rng.uniform(2.3, 3.0) if name != "learner" else 3.0
                fault["seconds"] = round(secs, 2)
                os.kill(pid, signal.SIGSTOP)
                time.sleep(secs)
                os.kill(pid, signal.SIGCONT)
            else:
                why = net_fault(nf, rng, run, name, fault)
                if why:
                    skipped.append({**fault, "skipped": why})
                    continue
            faults.append(fault)
            fault_log.write(json.dumps(fault) + "\n")
            fault_log.flush()
        if len(faults) < a.faults and not failures:
            failures.append(f"only {len(faults)} of {a.faults} faults before the run ended "
                            "(make the run longer or the gaps shorter)")
        try:
            rc = launch.wait(timeout=max(1.0, a.timeout - (time.time() - t0)))
        except subprocess.TimeoutExpired:
            launch.send_signal(signal.SIGTERM)
            rc = launch.wait(timeout=60)
            failures.append(f"the run did not finish within {a.timeout} s")
    finally:
        if nf is not None:
            nf.close()
        if launch.poll() is None:
            launch.kill()
        log.close()
        fault_log.close()
    wall = time.time() - t0

    more, figures = check(a, run, faults, rc)
    failures += more
    report = {"seed": a.seed, "faults": faults, "wall_seconds": round(wall, 1), "exit": rc, **figures,
              "net_faults_skipped": skipped, "failures": failures, "dir": work}
    print(json.dumps(report))
    if failures:
        for f in failures:
            print("chaos: FAILED: " + f, file=sys.stderr)
        print("chaos: last lines of " + os.path.join(work, "launch.log") + ":\n" +
              "\n".join(read(os.path.join(work, "launch.log")).splitlines()[-40:]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
