"""``/console/``: the landing page after sign-in (the overview is drawn here)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ._web import ConsoleUser, render, require

router = APIRouter()


@router.get("/")
async def home(request: Request, user: ConsoleUser = Depends(require("console:view"))) -> Response:
    return render(request, "home.html")
