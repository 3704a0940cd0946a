"""Prints one line per test case of a regrtest --junit-xml file, sorted:
"<outcome> <test id>", outcome passed, skipped, failure or error. Two runs of
the same test modules can then be compared with diff."""
import sys
import xml.etree.ElementTree as ET

outcomes = []
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    tags = {child.tag for child in case}
    outcome = next((t for t in ("error", "failure", "skipped") if t in tags), "passed")
    outcomes.append(f"{outcome} {case.get('name')}")
print("\n".join(sorted(outcomes)))
