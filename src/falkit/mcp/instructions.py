"""The server's instructions: what a model should know before calling falkit's tools."""

from __future__ import annotations

PROMPTING = """\
Writing prompts for Flux models:
- Describe the picture in plain sentences, most important first: the subject, what it does,
  the setting, then style, lighting, colours, camera or medium ("35mm photo, shallow depth
  of field", "watercolour", "isometric 3D render"). Concrete beats vague; Flux does not need
  tag lists, weights or negative prompts.
- Put any text that must appear in the image in quotes: a sign that says "OPEN".
- Keep the user's wording for what they asked; add detail rather than replacing it.
- To vary an image the user liked, reuse its seed and change the prompt a little."""

LORAS = """\
LoRAs (a person, a product or a style trained on the user's own pictures):
- list_loras shows the trained ones; pass their names in generate_image's loras (model
  flux-lora is chosen for you). A LoRA works only when the prompt contains its trigger word,
  e.g. "photo of TOK on a beach"; falkit adds a missing trigger word and says so.
- train_lora takes a folder or zip of 4 or more photos (10-20 varied ones work best) and a
  trigger word, a rare made-up word such as TOK. Training takes minutes: it returns a job id
  at once; call get_job with it to wait for the result."""

JOBS = """\
Jobs: generate_image waits up to {wait:g} seconds. A job still running then keeps running in
this server and the answer holds its job id: call get_job with that id (it waits again and
returns the images when done). Images come back as small previews plus the full-size image as
a falkit://images/... resource (resources/read), its path on the user's computer and Fal's URL
(which expires; the file is kept).

Parameters use Fal's names (num_inference_steps, guidance_scale, image_size, ...); each one's
description says which models take it and their limits. Unknown parameters are refused.
Use negative_prompt only with sdxl."""


def model_lines() -> str:
    """One line per catalog model: name, what it is for, price."""
    from falkit.catalog import MODELS

    lines = [
        f"- {spec.name}: {spec.use} ({spec.price.describe()})"
        for spec in MODELS.values()
        if spec.kind == "image"
    ]
    return "Models for generate_image (default flux-schnell):\n" + "\n".join(lines)


def limits(allowed: str, max_spend_usd: float | None) -> str:
    cap = (
        f"a spending cap of ${max_spend_usd:g} for this session; call estimate_cost before "
        "large requests"
        if max_spend_usd is not None
        else "no spending cap"
    )
    return (
        f"This server reads local files only under: {allowed}. It has {cap}. Every job costs "
        "the user money at Fal: make one image unless more are asked for."
    )


def server_instructions(*, wait_seconds: float, allowed: str, max_spend_usd: float | None) -> str:
    """The full instructions text sent to the client when it connects."""
    intro = (
        "falkit generates images with Fal.ai models (Flux, SDXL), trains LoRAs on the user's "
        "pictures, and keeps every image on the user's disk with its prompt and seed."
    )
    parts = [
        intro,
        model_lines(),
        PROMPTING,
        LORAS,
        JOBS.format(wait=wait_seconds),
        limits(allowed, max_spend_usd),
    ]
    return "\n\n".join(parts)
