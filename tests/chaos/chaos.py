#!/usr/bin/env python3
"""Seeded chaos run of the toy pipeline (issue 16, docs/reliability.md "Chaos").

`swarr launch` runs the toy SFT -> RL -> eval pipeline with every service as a real process on
loopback. Once the RL stage has started, this script injects `--faults` faults at random moments
(seeded): kill -9 of a random service (a rollout server, the learner, the coordinator; launch
restarts it on its ports) and SIGSTOP stalls (a rollout server stopped for longer than its lease,
or the learner for a few seconds, then SIGCONT). Then it waits for the run and checks:

  - the run completed (launch exits 0, summary.json, every stage done);
  - every RL step once: metrics.jsonl has steps 1..N in order;
  - 0 trajectory ids trained twice, and trained_ids.log holds exactly the ids of the surviving
    steps (trajectories.jsonl), each in one step;
  - groups_acked_never_trained == 0;
  - with --min-accuracy, the final eval accuracy is at least that.

It prints one JSON line with the faults and the figures, and exits 1 naming each failed check.

  tests/chaos/chaos.py --swarr build/bin/swarr --seed 1 --faults 5          # short (ctest)
  tests/chaos/run_long.sh                                                   # long variant
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

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--dir", default="")
    a = p.parse_args()
    rng = random.Random(a.seed)
    work = a.dir or tempfile.mkdtemp(prefix="swarr_chaos_")
    os.makedirs(work, exist_ok=True)
    run = os.path.join(work, "run")
    config = os.path.join(work, "pipeline.yaml")
    with open(config, "w") as f:
        f.write(pipeline_yaml(a))
    log = open(os.path.join(work, "launch.log"), "w")
    t0 = time.time()
    launch = subprocess.Popen([a.swarr, "launch", "--config", config, "--run-dir", run, "--rollouts",
                               str(a.rollouts), "--max-restarts", str(a.faults + 5)],
                              stdout=log, stderr=subprocess.STDOUT)
    failures = []
    faults = []
    try:
        # Faults start once the RL stage runs (its first step is logged).
        while not json_lines(f"{run}/stages/rl/metrics.jsonl"):
            if launch.poll() is not None or time.time() - t0 > a.timeout:
                failures.append("the rl stage never started")
                break
            time.sleep(0.1)
        rollouts = [f"rollout-{i}" for i in range(a.rollouts)]
        kinds = ["kill"] * 3 + ["stop"]
        while not failures and len(faults) < a.faults and launch.poll() is None:
            time.sleep(rng.uniform(*a.gap))
            kind = rng.choice(kinds)
            name = rng.choice(rollouts + ["learner", "coordinator"] if kind == "kill" else rollouts + ["learner"])
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
            else:
                # A rollout stopped for longer than its lease (2 s); the learner for 3 s.
                secs = rng.uniform(2.3, 3.0) if name != "learner" else 3.0
                fault["seconds"] = round(secs, 2)
                os.kill(pid, signal.SIGSTOP)
                time.sleep(secs)
                os.kill(pid, signal.SIGCONT)
            faults.append(fault)
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
        if launch.poll() is None:
            launch.kill()
        log.close()
    wall = time.time() - t0

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
                        f"({len(history)} ids) disagree")
    accuracy = stages[2].get("metrics", {}).get("accuracy") if len(stages) == 3 else None
    if a.min_accuracy >= 0 and (accuracy is None or accuracy < a.min_accuracy):
        failures.append(f"eval accuracy {accuracy} < {a.min_accuracy}")
    report = {
        "seed": a.seed, "faults": faults, "wall_seconds": round(wall, 1), "exit": rc,
        "rl_steps": len(steps), "eval_accuracy": accuracy,
        "restarts": sum(1 for f in faults if f["kind"] == "kill"),
        "stalls": sum(1 for f in faults if f["kind"] == "stop"),
        **{k: summary.get(k) for k in ("groups_dispatched", "groups_reassigned",
                                       "groups_redispatched_after_learner_restart",
                                       "groups_acked_never_trained", "groups_unused_at_stage_end",
                                       "groups_adopted_after_coordinator_restart",
                                       "trajectories_trained", "trajectories_dropped_stale",
                                       "trajectory_ids_trained_twice")},
        "failures": failures, "dir": work,
    }
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
