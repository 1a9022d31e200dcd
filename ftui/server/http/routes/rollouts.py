"""/v1/ftui/fine_tuning/jobs/{job_id}/rollouts — an ftui-specific endpoint (not in OpenAI's API): what a
reinforcement job's model answered at each validation step, with the rewards its grader gave.

    GET /v1/ftui/fine_tuning/jobs/{job_id}/rollouts?limit=20&after=STEP
    → {"object": "list", "data": [{"object": "ftui.rollouts", "step": 5, "created_at": …, "prompts": 40,
       "samples": 40, "mean_reward": 0.47}, …], "has_more": false}
    GET /v1/ftui/fine_tuning/jobs/{job_id}/rollouts/{step}
    → {"object": "ftui.rollouts", "step": 5, …, "data": [{"index": 0, "prompt": "…", "item": {…},
       "mean_reward": 1.0, "samples": [{"text": "4", "reward": 1.0, "sub_rewards": {}, "errors": []}]}, …]}

Steps come in order; ``after`` is a step number (one that has no rollouts is a 400, never the first page again).
A job that is not a reinforcement job, or has no validation file, has none: an empty list.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Query

from ftui.server.http.api import APIError, CtxDep
from ftui.server.http.routes.jobs import JobDep

router = APIRouter(prefix="/v1/ftui/fine_tuning/jobs")


@router.get("/{job_id}/rollouts")
async def list_rollouts(c: CtxDep, job: JobDep, limit: int = Query(20, ge=1, le=100),
                        after: int | None = Query(None, ge=0)):
    steps = c.store.rollout_steps(job["id"])
    if after is not None:
        numbers = [s["step"] for s in steps]
        if after not in numbers:
            raise APIError(400, f"Invalid 'after': step {after} of this job has no rollouts.", param="after",
                           code="invalid_cursor")
        steps = steps[numbers.index(after) + 1:]
    return {"object": "list", "data": [{"object": "ftui.rollouts", **s} for s in steps[:limit]],
            "has_more": len(steps) > limit}


@router.get("/{job_id}/rollouts/{step}")
async def get_rollouts(c: CtxDep, job: JobDep, step: int = Path(ge=0, le=10_000_000)):
    found = c.store.rollouts(job["id"], step)
    if found is None:
        raise APIError(404, f"No rollouts of {job['id']} at step {step}: rollouts are kept at its validation steps.",
                       param="step", code="rollouts_not_found")
    head, prompts = found
    return {"object": "ftui.rollouts", **head, "data": prompts}
