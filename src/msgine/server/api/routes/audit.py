"""Routes: audit."""

from fastapi import APIRouter

router = APIRouter()
