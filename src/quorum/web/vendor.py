"""Third-party browser code served from installed Python packages: never from a CDN."""

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import FileResponse

router = APIRouter(include_in_schema=False)
PLOTLY = resources.files("plotly") / "package_data" / "plotly.min.js"


@router.get("/vendor/plotly.min.js", name="web_plotly")
def plotly_js() -> FileResponse:
    """plotly.js as shipped in the ``plotly`` package; its version is in the URL's query."""
    return FileResponse(
        str(PLOTLY),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )
