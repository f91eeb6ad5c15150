"""Quality gates: the rules (curate.gates.rules), the frames they check (curate.gates.frames) and the runner
that validates them with Great Expectations at a gate point (curate.gates.runner)."""
