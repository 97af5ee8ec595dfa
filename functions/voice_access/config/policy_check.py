"""The build's policy check: ``python -m voice_access.config.policy_check FILE...`` validates each policy file with
pydantic and writes the record beside each valid one, so that a cold start reads it without pydantic. sam build runs
it (functions/Makefile) with nothing but pydantic installed."""

import sys
from pathlib import Path

from voice_access.config.policy_file import PolicyError, record_path, validate, validation_record


def main(paths: list[str]) -> int:
    """``python -m voice_access.config.policy_check FILE...``: validate each policy file; write the record beside each
    valid one (sam build does this for the bundled policy), or say what is wrong and exit 1."""
    if not paths:
        print("usage: python -m voice_access.config.policy_check POLICY_FILE...", file=sys.stderr)
        return 2
    failed = False
    for name in paths:
        path = Path(name)
        try:
            raw = path.read_bytes()
            validate(path, raw)
        except (OSError, PolicyError) as exc:
            print(f"voice_access.config.policy_check: {exc}", file=sys.stderr)
            failed = True
            continue
        if (record := validation_record(raw)) is not None:
            record_path(path).write_text(record + "\n")
            print(f"{path}: valid; its record is {record_path(path)}, to deploy beside it")
        else:
            print(f"{path}: valid (no record written: this code's own files could not be read)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
