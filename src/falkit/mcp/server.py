"""The MCP tools: thin definitions over McpApp, each with descriptions a model can act on.

    from falkit.mcp.server import ServerOptions, create_server
    from falkit.mcp.app import McpApp

    async with McpApp(service, ServerOptions(allow_dirs=(Path("~/photos"),))) as app:
        server = create_server(app)          # an mcp MCPServer
        await server.run_stdio_async()

Every tool is a StrictTool (tooling.py): unknown arguments are refused, short names are taken
as Fal's, and the schema a client sees carries the catalog's enums and bounds (params.py).
Errors a model (or its user) can fix are tool errors (isError) carrying the same one-line
message the CLI prints; the API key never appears in any answer. Full-size images are
resources (resources.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Literal, cast

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from falkit.errors import FalkitError, ServiceDisabledError
from falkit.mcp.answers import (
    CancelAnswer,
    EstimateAnswer,
    JobAnswer,
    JobsAnswer,
    LorasAnswer,
    ModelsAnswer,
)
from falkit.mcp.app import McpApp, ServerOptions
from falkit.mcp.params import (
    Guidance,
    ImageSizeArg,
    Loras,
    Model,
    NegativePrompt,
    NumImages,
    OutputFormat,
    Prompt,
    SafetyChecker,
    SafetyTolerance,
    Seed,
    Steps,
    build_request,
    catalog_property,
    image_aliases,
    image_overlay,
)
from falkit.mcp.progress import ProgressReporter
from falkit.mcp.tooling import StrictTool, publish_schema

__all__ = ["McpApp", "ServerOptions", "create_server", "tool_message"]

KEY_HINT = (
    ' In an MCP client, put the key in the falkit entry of its MCP config, "env": '
    '{"FAL_API_KEY": "<key from https://fal.ai/dashboard/keys>"}, and restart the client; '
    "or start the server as `falkit mcp --emulator` to try falkit offline."
)

Ctx = Context[Any, Any]
JobId = Annotated[
    str,
    Field(
        title="Job id",
        description="The job id from generate_image or train_lora (a unique prefix works).",
    ),
]
WaitSeconds = Annotated[
    float | None,
    Field(
        title="Wait (seconds)",
        description="Seconds to wait for a running job, with progress, before answering; "
        "default the server's wait limit (which also caps it); 0 answers at once.",
        ge=0,
    ),
]
Search = Annotated[
    str | None,
    Field(title="Search", description="Text to find in the prompt, model, job id or request id."),
]
Limit = Annotated[
    int, Field(title="Limit", description="At most this many jobs, newest first.", ge=1, le=100)
]
StatusFilter = Annotated[
    Literal["pending", "submitted", "running", "completed", "failed", "cancelled", "unknown"]
    | None,
    Field(title="Status", description="Only jobs with this status."),
]
Source = Annotated[
    str,
    Field(
        title="Training pictures",
        description="A folder of 4 or more images (jpg, png or webp; optional same-named .txt "
        "captions), a .zip of them, or an https URL of such a zip. Local paths must be under "
        "the folders the user allowed.",
    ),
]
TriggerWord = Annotated[
    str | None,
    Field(
        title="Trigger word",
        description="A rare made-up word that will call up the subject in prompts, e.g. TOK; "
        "required unless every image has a caption.",
    ),
]
LoraName = Annotated[
    str | None,
    Field(
        title="LoRA name", description="The LoRA's name in the library (default: the trigger word)."
    ),
]
TrainSteps = Annotated[
    int, Field(title="Training steps", description="Training steps; 1000 suits most subjects.")
]
IsStyle = Annotated[
    bool,
    Field(
        title="Style", description="True to learn a style (look, palette) rather than a subject."
    ),
]
CreateMasks = Annotated[
    bool,
    Field(
        title="Subject masks",
        description="Focus training on the subject with segmentation masks (subjects only).",
    ),
]

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
SPENDS = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)
CANCELS = ToolAnnotations(destructive_hint=True, open_world_hint=True)


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


def create_server(app: McpApp) -> MCPServer[Any]:
    """An MCP server whose tools run on ``app`` (which the caller closes)."""
    from falkit.mcp.resources import register_images

    server: MCPServer[Any] = MCPServer(
        "falkit",
        title="falkit: Fal.ai image generation",
        instructions=app.instructions(),
        version=_version(),
        log_level="WARNING",
        tools=[*_image_tools(app), *_job_tools(app), *_lora_tools(app)],
    )
    register_images(server, app.service)
    return server


def strict_tool(
    fn: Callable[..., Any],
    title: str,
    annotations: ToolAnnotations,
    overlay: Mapping[str, Mapping[str, Any]] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> StrictTool:
    """A tool from ``fn``'s signature with a closed schema (``overlay`` laid over it)."""
    tool = cast(StrictTool, StrictTool.from_function(fn, title=title, annotations=annotations))
    tool.parameters = publish_schema(tool.parameters, overlay)
    tool.aliases = dict(aliases or {})
    return tool


def _image_tools(app: McpApp) -> list[StrictTool]:
    async def generate_image(
        prompt: Prompt,
        ctx: Ctx,
        model: Model = None,
        image_size: ImageSizeArg = None,
        num_inference_steps: Steps = None,
        guidance_scale: Guidance = None,
        seed: Seed = None,
        num_images: NumImages = None,
        loras: Loras = None,
        output_format: OutputFormat = None,
        negative_prompt: NegativePrompt = None,
        enable_safety_checker: SafetyChecker = None,
        safety_tolerance: SafetyTolerance = None,
    ) -> Annotated[CallToolResult, JobAnswer]:
        """Generate images from a prompt with a Fal model (this costs the user money).

        Answers with small previews, the full-size images as MCP resources and files on disk,
        and Fal's URLs. A job that takes longer than the server's wait limit keeps running: the
        answer then holds its job_id; call get_job with it for the images.
        """
        args = {
            "prompt": prompt,
            "model": model,
            "image_size": image_size,
            "num_inference_steps": num_inference_steps,
            "guidance_scale": guidance_scale,
            "seed": seed,
            "num_images": num_images,
            "loras": loras,
            "output_format": output_format,
            "negative_prompt": negative_prompt,
            "enable_safety_checker": enable_safety_checker,
            "safety_tolerance": safety_tolerance,
        }
        return await _guard(lambda: app.generate(build_request(args), _reporter(ctx)))

    async def estimate_cost(
        prompt: Prompt,
        model: Model = None,
        image_size: ImageSizeArg = None,
        num_inference_steps: Steps = None,
        guidance_scale: Guidance = None,
        seed: Seed = None,
        num_images: NumImages = None,
        loras: Loras = None,
        output_format: OutputFormat = None,
        negative_prompt: NegativePrompt = None,
        enable_safety_checker: SafetyChecker = None,
        safety_tolerance: SafetyTolerance = None,
    ) -> Annotated[CallToolResult, EstimateAnswer]:
        """Check a generate_image request exactly as generate_image would (the same parameters,
        limits and LoRA lookups) and estimate its cost in USD; nothing is sent."""
        args = {
            "prompt": prompt,
            "model": model,
            "image_size": image_size,
            "num_inference_steps": num_inference_steps,
            "guidance_scale": guidance_scale,
            "seed": seed,
            "num_images": num_images,
            "loras": loras,
            "output_format": output_format,
            "negative_prompt": negative_prompt,
            "enable_safety_checker": enable_safety_checker,
            "safety_tolerance": safety_tolerance,
        }
        return await _guard(lambda: app.estimate(build_request(args)))

    async def list_models() -> Annotated[CallToolResult, ModelsAnswer]:
        """The models falkit knows: name, what each is good for, its price rule and defaults."""
        return app.models()

    overlay, aliases = image_overlay(), image_aliases()
    return [
        strict_tool(generate_image, "Generate images", SPENDS, overlay, aliases),
        strict_tool(estimate_cost, "Estimate cost", READ_ONLY, overlay, aliases),
        strict_tool(list_models, "List models", READ_ONLY),
    ]


def _job_tools(app: McpApp) -> list[StrictTool]:
    async def get_job(
        job_id: JobId, ctx: Ctx, wait_seconds: WaitSeconds = None
    ) -> Annotated[CallToolResult, JobAnswer]:
        """A job's status; waits for a running one (with progress) and returns its images (or
        its LoRA) once done. Use it with the job_id that generate_image or train_lora gave."""
        wait = app.options.wait_seconds if wait_seconds is None else wait_seconds
        wait = min(wait, app.options.wait_seconds)
        return await _guard(lambda: app.get_job(job_id, wait, _reporter(ctx)))

    async def list_jobs(
        search: Search = None, limit: Limit = 10, status: StatusFilter = None
    ) -> Annotated[CallToolResult, JobsAnswer]:
        """Recent jobs, newest first, with status, model, prompt and saved files."""
        return await _guard(lambda: app.list_jobs(search, limit, status))

    async def cancel_job(job_id: JobId) -> Annotated[CallToolResult, CancelAnswer]:
        """Cancel a queued or running job at Fal (one already running may still finish)."""
        return await _guard(lambda: app.cancel(job_id))

    wait = app.options.wait_seconds
    return [
        strict_tool(get_job, "Get a job", READ_ONLY, {"wait_seconds": {"default": wait}}),
        strict_tool(list_jobs, "List jobs", READ_ONLY),
        strict_tool(cancel_job, "Cancel a job", CANCELS),
    ]


def _lora_tools(app: McpApp) -> list[StrictTool]:
    async def train_lora(
        source: Source,
        ctx: Ctx,
        trigger_word: TriggerWord = None,
        name: LoraName = None,
        steps: TrainSteps = 1000,
        is_style: IsStyle = False,
        create_masks: CreateMasks = True,
    ) -> Annotated[CallToolResult, JobAnswer]:
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

    async def list_loras() -> Annotated[CallToolResult, LorasAnswer]:
        """The trained LoRAs in the user's library, with their trigger words."""
        return await _guard(lambda: app.loras())

    return [
        strict_tool(train_lora, "Train a LoRA", SPENDS, _training_overlay()),
        strict_tool(list_loras, "List LoRAs", READ_ONLY),
    ]


def _training_overlay() -> dict[str, dict[str, Any]]:
    from falkit.catalog import MODELS

    training = [spec for spec in MODELS.values() if spec.kind == "training"]
    return {"steps": catalog_property("steps", training)}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("falkit")
    except PackageNotFoundError:
        return "0"
