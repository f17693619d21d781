"""Tests of the Jira connector against the fake Jira (Cloud and Data Center) in ``tests.fakes``."""
