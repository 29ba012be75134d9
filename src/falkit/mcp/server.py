"""The MCP tools: thin definitions over McpApp, each with descriptions a model can act on.

    from falkit.mcp.server import ServerOptions, create_server
    from falkit.mcp.app import McpApp

    async with McpApp(service, ServerOptions(allow_dirs=(Path("~/photos"),))) as app:
        server = create_server(app)          # an mcp MCPServer
        await server.run_stdio_async()

Errors a model (or its user) can fix are raised as tool errors (isError) carrying the same
message the CLI prints; the API key never appears in any answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from falkit.errors import FalkitError, ServiceDisabledError
from falkit.mcp.app import McpApp, ServerOptions
from falkit.mcp.progress import ProgressReporter
from falkit.request import ImageRequest

__all__ = ["McpApp", "ServerOptions", "create_server", "tool_message"]

KEY_HINT = (
    ' In an MCP client, put the key in the falkit entry of its MCP config, "env": '
    '{"FAL_API_KEY": "<key from https://fal.ai/dashboard/keys>"}, and restart the client; '
    "or start the server as `falkit mcp --emulator` to try falkit offline."
)


class LoraParam(BaseModel):
    """A LoRA with its strength."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(
        description="A LoRA name from list_loras, or an https URL of a .safetensors file"
    )
    scale: float = Field(1.0, description="Strength, 0 to 2; 0.6 to 1.0 is the usual range")


Ctx = Context[Any, Any]
Prompt = Annotated[
    str,
    Field(
        description="What to draw, in plain descriptive sentences: subject, action, setting, "
        "then style, lighting and camera. Include a LoRA's trigger word when using one."
    ),
]
Model = Annotated[
    str | None,
    Field(
        description="Model from list_models: flux-schnell (fast drafts, default), flux-dev "
        "(balanced), flux-pro-1.1 (final quality), flux-realism (photos), flux-lora (with "
        "LoRAs; chosen automatically when loras are given), sdxl."
    ),
]
ImageSizeParam = Annotated[
    str | None,
    Field(
        description="square_hd, square, portrait_4_3, portrait_16_9, landscape_4_3, "
        "landscape_16_9, or WIDTHxHEIGHT such as 1024x768; default: the model's own "
        "(landscape_4_3 for Flux)."
    ),
]
Steps = Annotated[
    int | None,
    Field(
        description="Denoising steps; leave out for the model's default (4 for flux-schnell, "
        "28 for flux-dev). More steps: more detail, slower."
    ),
]
Guidance = Annotated[
    float | None,
    Field(description="How literally to follow the prompt; Flux's default 3.5, 3 to 5 typical."),
]
Seed = Annotated[
    int | None,
    Field(description="Seed for a reproducible image; reuse an image's seed to vary it."),
]
NumImages = Annotated[
    int, Field(description="How many images (1 to 4; sdxl up to 8). Each one costs money.")
]
Loras = Annotated[
    list[str | LoraParam] | None,
    Field(
        description="LoRAs to apply: names from list_loras or https URLs of .safetensors "
        "files, each as NAME_OR_URL or NAME_OR_URL:SCALE (e.g. 'mydog:0.9'), or "
        "{path, scale}. Local .safetensors paths work only under the allowed folders."
    ),
]
OutputFormat = Annotated[
    Literal["jpeg", "png"] | None, Field(description="File format: jpeg (default) or png.")
]
JobId = Annotated[
    str,
    Field(description="The job id from generate_image or train_lora (a unique prefix works)."),
]
WaitSeconds = Annotated[
    float | None,
    Field(
        description="Seconds to wait for a running job, with progress, before answering; "
        "default the server's wait limit; 0 answers at once.",
        ge=0,
    ),
]
Search = Annotated[
    str | None, Field(description="Text to find in the prompt, model, job id or request id.")
]
Limit = Annotated[int, Field(description="At most this many jobs, newest first.", ge=1, le=100)]
StatusFilter = Annotated[
    Literal["pending", "submitted", "running", "completed", "failed", "cancelled", "unknown"]
    | None,
    Field(description="Only jobs with this status."),
]
Source = Annotated[
    str,
    Field(
        description="The training pictures: a folder of 4 or more images (jpg, png or webp; "
        "optional same-named .txt captions), a .zip of them, or an https URL of such a zip. "
        "Local paths must be under the folders the user allowed."
    ),
]
TriggerWord = Annotated[
    str | None,
    Field(
        description="A rare made-up word that will call up the subject in prompts, e.g. TOK; "
        "required unless every image has a caption."
    ),
]
LoraName = Annotated[
    str | None,
    Field(description="The LoRA's name in the library (default: the trigger word)."),
]
TrainSteps = Annotated[
    int, Field(description="Training steps, 1 to 10000; 1000 suits most subjects.")
]
IsStyle = Annotated[
    bool, Field(description="True to learn a style (look, palette) rather than a subject.")
]
CreateMasks = Annotated[
    bool,
    Field(description="Focus training on the subject with segmentation masks (subjects only)."),
]

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
SPENDS = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)


def tool_message(exc: FalkitError) -> str:
    """The text a model sees for a falkit error: the CLI's message, plus how to set the key."""
    text = str(exc).strip() or type(exc).__name__
    return text + KEY_HINT if isinstance(exc, ServiceDisabledError) else text


async def _guard(work: Callable[[], Awaitable[CallToolResult]]) -> CallToolResult:
    """Run a tool's work; falkit errors (bad input included) become one-line tool errors."""
    try:
        return await work()
    except FalkitError as exc:
        raise ToolError(tool_message(exc)) from None


def _reporter(ctx: Ctx) -> ProgressReporter:
    return ProgressReporter(ctx.report_progress)


def _request(
    prompt: str,
    model: str | None,
    image_size: str | None,
    steps: int | None,
    guidance: float | None,
    seed: int | None,
    num_images: int,
    loras: list[str | LoraParam] | None,
    output_format: str | None,
) -> ImageRequest:
    items = [i if isinstance(i, str) else i.model_dump() for i in loras or []]
    return ImageRequest.build(
        prompt,
        model=model,
        image_size=image_size,
        steps=steps,
        guidance=guidance,
        seed=seed,
        num_images=num_images,
        output_format=output_format,
        loras=items or None,
    )


def create_server(app: McpApp) -> MCPServer[Any]:
    """An MCP server whose tools run on ``app`` (which the caller closes)."""
    server: MCPServer[Any] = MCPServer(
        "falkit",
        title="falkit: Fal.ai image generation",
        instructions=app.instructions(),
        version=_version(),
        log_level="WARNING",
    )
    _image_tools(server, app)
    _job_tools(server, app)
    _lora_tools(server, app)
    return server


def _image_tools(server: MCPServer[Any], app: McpApp) -> None:
    @server.tool(annotations=SPENDS)
    async def generate_image(
        prompt: Prompt,
        ctx: Ctx,
        model: Model = None,
        image_size: ImageSizeParam = None,
        steps: Steps = None,
        guidance: Guidance = None,
        seed: Seed = None,
        num_images: NumImages = 1,
        loras: Loras = None,
        output_format: OutputFormat = None,
    ) -> CallToolResult:
        """Generate images from a prompt with a Fal model (this costs the user money).

        Answers with small previews, the full-size files' paths and Fal's URLs. A job that
        takes longer than the server's wait limit keeps running: the answer then holds its
        job_id; call get_job with it for the images.
        """

        def request() -> ImageRequest:
            return _request(
                prompt, model, image_size, steps, guidance, seed, num_images, loras, output_format
            )

        return await _guard(lambda: app.generate(request(), _reporter(ctx)))

    @server.tool(annotations=READ_ONLY)
    async def estimate_cost(
        prompt: Prompt,
        model: Model = None,
        image_size: ImageSizeParam = None,
        steps: Steps = None,
        guidance: Guidance = None,
        seed: Seed = None,
        num_images: NumImages = 1,
        loras: Loras = None,
        output_format: OutputFormat = None,
    ) -> CallToolResult:
        """Check a generate_image request and estimate its cost in USD; nothing is sent."""

        def request() -> ImageRequest:
            return _request(
                prompt, model, image_size, steps, guidance, seed, num_images, loras, output_format
            )

        return await _guard(lambda: app.estimate(request()))

    @server.tool(annotations=READ_ONLY)
    async def list_models() -> CallToolResult:
        """The models falkit knows: name, what each is good for, and its price rule."""
        return app.models()


def _job_tools(server: MCPServer[Any], app: McpApp) -> None:
    @server.tool(annotations=READ_ONLY)
    async def get_job(job_id: JobId, ctx: Ctx, wait_seconds: WaitSeconds = None) -> CallToolResult:
        """A job's status; waits for a running one (with progress) and returns its images (or
        its LoRA) once done. Use it with the job_id that generate_image or train_lora gave."""
        wait = app.options.wait_seconds if wait_seconds is None else wait_seconds
        wait = min(wait, app.options.wait_seconds)
        return await _guard(lambda: app.get_job(job_id, wait, _reporter(ctx)))

    @server.tool(annotations=READ_ONLY)
    async def list_jobs(
        search: Search = None, limit: Limit = 10, status: StatusFilter = None
    ) -> CallToolResult:
        """Recent jobs, newest first, with status, model, prompt and saved files."""
        return await _guard(lambda: app.list_jobs(search, limit, status))

    @server.tool(annotations=ToolAnnotations(destructive_hint=True, open_world_hint=True))
    async def cancel_job(job_id: JobId) -> CallToolResult:
        """Cancel a queued or running job at Fal (one already running may still finish)."""
        return await _guard(lambda: app.cancel(job_id))


def _lora_tools(server: MCPServer[Any], app: McpApp) -> None:
    @server.tool(annotations=SPENDS)
    async def train_lora(
        source: Source,
        ctx: Ctx,
        trigger_word: TriggerWord = None,
        name: LoraName = None,
        steps: TrainSteps = 1000,
        is_style: IsStyle = False,
        create_masks: CreateMasks = True,
    ) -> CallToolResult:
        """Train a Flux LoRA on the user's pictures (a few minutes; costs money). Answers with
        the job_id once submitted; get_job with it waits for the LoRA. Then use the LoRA's
        name in generate_image's loras, with its trigger word in the prompt."""
        options = {
            "trigger_word": trigger_word,
            "name": name,
            "steps": steps,
            "is_style": is_style,
            "create_masks": create_masks,
        }
        return await _guard(lambda: app.train(source, options, _reporter(ctx)))

    @server.tool(annotations=READ_ONLY)
    async def list_loras() -> CallToolResult:
        """The trained LoRAs in the user's library, with their trigger words."""
        return await _guard(lambda: app.loras())


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("falkit")
    except PackageNotFoundError:
        return "0"
