"""The Presidio recognizers the `pii` rules declare, built for the Analyzer (curate.pii.analyzer).

Each recognizer rule becomes a pattern recognizer with its regexes expanded (curate.pii.rules), its
checksum, its exclusions and a gate: its `requires` and `languages`, checked against the text and
the languages of the record before any pattern runs. Profiles that judge names in context
(`identifying.name_pairs`) add the given-name recognizers of curate.pii.context.
"""

from __future__ import annotations

from curate.errors import ConfigError
from curate.pii.rules import PiiRules, RecognizerRule, words_of


def pattern_recognizer(rule: RecognizerRule, rules: PiiRules):
    """A Presidio pattern recognizer for a rule: its checksum, its exclusions, and a gate (its
    `requires` and `languages`) checked against the text and the languages the analyser is on."""
    import regex
    from presidio_analyzer import Pattern, PatternRecognizer

    from curate.pii.analyzer import Gate
    from curate.pii.validators import VALIDATORS

    check = VALIDATORS.get(rule.validate_with) if rule.validate_with else None
    excluded = {w.lower() for entry in rule.exclude for w in words_of(entry, rules.terms)}
    requires = Gate([rules.expand(x) for x in rule.requires]) if rule.requires else None
    languages = frozenset(rule.languages)

    class Rule(PatternRecognizer):
        scope: frozenset[str] = frozenset()  # the languages of the text being analysed (set by the Analyzer)
        _last: tuple = (None, None, False)  # (text, scope, answer): asked by the gate, then by analyze()

        def applies(self, text: str) -> bool:
            if self._last[0] is text and self._last[1] is self.scope:
                return self._last[2]
            ok = (not languages or bool(languages & self.scope)) and (requires is None or requires.holds(text))
            self._last = (text, self.scope, ok)
            return ok

        def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
            return super().analyze(text, entities, nlp_artifacts, regex_flags) if self.applies(text) else []

        def validate_result(self, pattern_text: str):
            return check(pattern_text) if check else None

        def invalidate_result(self, pattern_text: str):
            return pattern_text.strip().lower() in excluded if excluded else None

    # Presidio matches with the `regex` module, which allows variable-length lookbehind (context).
    flags = regex.DOTALL | regex.MULTILINE | (0 if rule.case_sensitive else regex.IGNORECASE)
    patterns = []
    for p in rule.patterns:
        expanded = rules.expand(p.regex)
        try:
            regex.compile(expanded, flags)
        except regex.error as exc:
            raise ConfigError(f"pii.recognizers[{rule.name}]: bad regex {p.regex!r}: {exc}") from None
        patterns.append(Pattern(p.name or rule.name, expanded, p.score))
    rec = Rule(
        supported_entity=rule.entity,
        name=rule.name,
        context=rule.context or None,
        patterns=patterns,
        global_regex_flags=flags,
    )
    rec.gated = bool(languages or requires)
    rec.gate = requires
    return rec


def context_recognizers(rules: PiiRules) -> list:
    from curate.pii.context import name_recognizers

    i = rules.identifying
    if not (i.name_pairs and "PERSON" in rules.entities):  # the strict profile (no judge) takes them as found
        return []
    return name_recognizers(frozenset(rules.nlp.ner_languages))
