"""The process templates the fake Azure DevOps serves (Agile, Scrum, CMMI): states, categories, fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# What each process template declares: states and categories, effort/order fields, backlog types.
PROCESSES: Mapping[str, Mapping[str, Any]] = {
    "Agile": {
        "effort": "Microsoft.VSTS.Scheduling.StoryPoints",
        "order": "Microsoft.VSTS.Common.StackRank",
        "requirement": ["User Story"],
        "bug": ["Bug"],
        "task": ["Task"],
        "portfolio": ["Feature", "Epic"],
        "states": {
            "User Story": [
                ("New", "Proposed"),
                ("Active", "InProgress"),
                ("Resolved", "Resolved"),
                ("Closed", "Completed"),
                ("Removed", "Removed"),
            ],
            "Bug": [
                ("New", "Proposed"),
                ("Active", "InProgress"),
                ("Resolved", "Resolved"),
                ("Closed", "Completed"),
            ],
            "Task": [
                ("New", "Proposed"),
                ("Active", "InProgress"),
                ("Closed", "Completed"),
                ("Removed", "Removed"),
            ],
            "Feature": [
                ("New", "Proposed"),
                ("Active", "InProgress"),
                ("Resolved", "Resolved"),
                ("Closed", "Completed"),
                ("Removed", "Removed"),
            ],
            "Epic": [
                ("New", "Proposed"),
                ("Active", "InProgress"),
                ("Resolved", "Resolved"),
                ("Closed", "Completed"),
                ("Removed", "Removed"),
            ],
        },
    },
    "Scrum": {
        "effort": "Microsoft.VSTS.Scheduling.Effort",
        "order": "Microsoft.VSTS.Common.BacklogPriority",
        "requirement": ["Product Backlog Item"],
        "bug": ["Bug"],
        "task": ["Task"],
        "portfolio": ["Feature", "Epic"],
        "states": {
            "Product Backlog Item": [
                ("New", "Proposed"),
                ("Approved", "Proposed"),
                ("Committed", "InProgress"),
                ("Done", "Completed"),
                ("Removed", "Removed"),
            ],
            "Bug": [
                ("New", "Proposed"),
                ("Approved", "Proposed"),
                ("Committed", "InProgress"),
                ("Done", "Completed"),
                ("Removed", "Removed"),
            ],
            "Task": [
                ("To Do", "Proposed"),
                ("In Progress", "InProgress"),
                ("Done", "Completed"),
                ("Removed", "Removed"),
            ],
            "Feature": [
                ("New", "Proposed"),
                ("In Progress", "InProgress"),
                ("Done", "Completed"),
                ("Removed", "Removed"),
            ],
            "Epic": [
                ("New", "Proposed"),
                ("In Progress", "InProgress"),
                ("Done", "Completed"),
                ("Removed", "Removed"),
            ],
        },
    },
    "CMMI": {
        "effort": "Microsoft.VSTS.Scheduling.Size",
        "order": "Microsoft.VSTS.Common.StackRank",
        "requirement": ["Requirement"],
        "bug": ["Bug"],
        "task": ["Task"],
        "portfolio": ["Feature", "Epic"],
        "states": {
            "Requirement": [
                ("Proposed", "Proposed"),
                ("Active", "InProgress"),
                ("Resolved", "Resolved"),
                ("Closed", "Completed"),
            ],
            "Bug": [
                ("Proposed", "Proposed"),
                ("Active", "InProgress"),
                ("Resolved", "Resolved"),
                ("Closed", "Completed"),
            ],
            "Task": [
                ("Proposed", "Proposed"),
                ("Active", "InProgress"),
                ("Resolved", "Resolved"),
                ("Closed", "Completed"),
            ],
            "Feature": [
                ("Proposed", "Proposed"),
                ("Active", "InProgress"),
                ("Resolved", "Resolved"),
                ("Closed", "Completed"),
            ],
            "Epic": [
                ("Proposed", "Proposed"),
                ("Active", "InProgress"),
                ("Resolved", "Resolved"),
                ("Closed", "Completed"),
            ],
        },
    },
}
