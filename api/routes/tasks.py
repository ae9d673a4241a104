"""`/tasks`: what can be run, with each task's input and output JSON Schema."""

from __future__ import annotations

from fastapi import APIRouter

from fanout import tasks
from fanout.api.schemas import TaskPublic, TasksPublic

router = APIRouter(tags=["tasks"])


@router.get("/tasks", response_model=TasksPublic)
def list_tasks() -> TasksPublic:
    return TasksPublic(
        items=[
            TaskPublic(
                name=t.name,
                is_async=t.is_async,
                takes_params=t.takes_params,
                max_attempts=t.max_attempts,
                timeout=t.timeout,
                **t.schemas(),
            )
            for t in tasks.all_tasks()
        ],
        reducers=tasks.all_reducers(),
    )
