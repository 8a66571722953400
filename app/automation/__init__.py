"""Automation (R8): rules that run operations when their event happens, and the
operations themselves (an action's or a rule's steps). The one package that
orchestrates the others: it moves statuses, assigns, enrolls, sends and blocks
through each domain's own functions, and no domain package imports it except
where the layering contract in pyproject.toml names the import."""
