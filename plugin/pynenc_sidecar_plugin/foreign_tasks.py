"""Stand-in Pynenc tasks for invocations that sidecar SDK workers ran.

Pynenc rebuilds an invocation's call from its task id (`Task.from_id`: the app's registered
tasks, else `import module; getattr(module, name)` must give a Pynenc Task). A task that a
Go, TypeScript, Java or Python SDK worker ran through DeterministicExecutorService is not a
Pynenc Task in this process (its module is not importable here, or holds an SDK task), so
without a stand-in Pynenc's tools (pynmon, `app.state_backend.get_invocation`) fail on it
with ImportError/ValueError. The stand-in carries the task id, so the invocation, its
arguments, history and result read as Pynenc's own; calling it raises, since the task's code
lives with the SDK worker, not here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from pynenc.task import Task

if TYPE_CHECKING:
    from pynenc import Pynenc
    from pynenc.identifiers.task_id import TaskId


class ForeignTaskError(RuntimeError):
    """A stand-in task was called: its code runs in a sidecar SDK worker, not in Pynenc."""


def ensure_task(app: Pynenc, task_id: TaskId, defines_workflow: bool) -> None:
    """Make `task_id` resolvable in `app`: its own task if Pynenc can resolve one, else a stand-in.

    `defines_workflow`: an invocation of it is its workflow's main task (the stand-in is then
    a workflow task, as `@app.workflow` would make it, so Pynenc calls it the workflow root).
    """
    if task_id in app.tasks:
        return
    try:
        Task.from_id(app, task_id)
    except (ImportError, AttributeError, ValueError):
        options = {"is_workflow_task": True} if defines_workflow else {}
        try:
            app.tasks[task_id] = Task.create_for_app(app, _stand_in(task_id), options)
        except RuntimeError:  # a `__main__` task id: Pynenc refuses it, and then says why
            pass


def _stand_in(task_id: TaskId) -> Any:
    def run_elsewhere(*args: Any, **kwargs: Any) -> NoReturn:
        raise ForeignTaskError(
            f"task {task_id.key} ran on a sidecar SDK worker: Pynenc shows its invocations but cannot run it "
            "(run it from the SDK worker's code)")

    run_elsewhere.__module__ = task_id.module
    run_elsewhere.__name__ = run_elsewhere.__qualname__ = task_id.func_name
    return run_elsewhere
