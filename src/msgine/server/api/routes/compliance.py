"""Routes: compliance."""

from fastapi import APIRouter

router = APIRouter()
