#!/usr/bin/python3
"""Parses Dockerfiles the way a builder reads them and checks what can be checked without
building: known instructions, line continuations, every FROM's ${ARG} declared before the first
FROM (and given a default), `COPY --from=` naming an earlier stage, COPY/ADD sources present in
the build context (the repository root, or CONTEXT:path given as file=context), and an ENTRYPOINT
in the last stage.  Usage: dockerfile_lint.py FILE[=CONTEXT] ...   (exit 1 on a problem)"""
import os
import re
import sys

KNOWN = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
         "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER"}


def instructions(text):
    out, cur, start = [], "", 0
    for n, line in enumerate(text.split("\n"), 1):
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue  # comment lines inside a continuation are skipped by the builder
        if not cur:
            start = n
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        out.append((start, cur))
        cur = ""
    if cur:
        out.append((start, cur + "  <- ends in a line continuation"))
    return out


def lint(path, context):
    problems = []
    text = open(path).read()
    global_args = {}
    stages = []
    seen_from = False
    last_entry = None
    for n, ins in instructions(text):
        word, _, rest = ins.partition(" ")
        kw = word.upper()
        where = f"{path}:{n}"
        if kw not in KNOWN:
            problems.append(f"{where}: unknown instruction {word}")
            continue
        if "<- ends in" in rest:
            problems.append(f"{where}: the file ends inside a line continuation")
        if kw == "ARG" and not seen_from:
            name, _, default = rest.partition("=")
            global_args[name.strip()] = default.strip()
        if kw == "FROM":
            seen_from = True
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", rest.strip(), re.I)
            if not m:
                problems.append(f"{where}: FROM {rest!r} unparsable")
                continue
            for a in re.findall(r"\$\{?(\w+)\}?", m.group(1)):
                if a not in global_args:
                    problems.append(f"{where}: FROM uses ${a}, not declared by an ARG before the first FROM")
                elif not global_args[a]:
                    problems.append(f"{where}: ARG {a} has no default")
            stages.append(m.group(2))
            last_entry = None
        if kw in ("COPY", "ADD"):
            args = rest.split()
            opts = [a for a in args if a.startswith("--")]
            files = [a for a in args if not a.startswith("--")]
            if len(files) < 2:
                problems.append(f"{where}: {kw} needs a source and a destination")
                continue
            frm = [o.split("=", 1)[1] for o in opts if o.startswith("--from=")]
            if frm:
                if frm[0] not in stages[:-1]:
                    problems.append(f"{where}: COPY --from={frm[0]} names no earlier stage ({stages[:-1]})")
            else:
                for src in files[:-1]:
                    if not os.path.exists(os.path.join(context, src)):
                        problems.append(f"{where}: {kw} source {src} not in the build context {context}")
        if kw == "ENTRYPOINT":
            last_entry = rest
    if not stages:
        problems.append(f"{path}: no FROM")
    if last_entry is None:
        problems.append(f"{path}: the last stage has no ENTRYPOINT")
    return problems


def main():
    problems = []
    for arg in sys.argv[1:]:
        path, _, context = arg.partition("=")
        problems += lint(path, context or ".")
        print(f"dockerfile_lint: {path}: {'ok' if not problems else 'problems'}")
    for p in problems:
        print("FAIL:", p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
