"""The Entropy Explorer: a Gradio app showing the entropy dynamics of a prompt's sampled responses.

A person types a prompt; the app samples k responses with `sample_with_entropies`
(entropies recorded during generation), profiles them with `EntropyProfile`, scores
them with `EDAReward` against a general-domain reference R, and shows: every sample's
per-token entropy curve in one plot, each K-bin profile against R's band (mean +- std),
a table per sample (length, magnitude, variation, EDA reward with the parts of its distance
D, verified answer when the prompt is a known task), and one sample's tokens coloured by
entropy with the forking tokens (H above R's 80th percentile) marked.

    examples     the clickable task problems, with their verifiers
    models       loading a model by id, its reference R (the bundled pool for the toy
                 reasoner, else sampled from the model), a bounded cache
    exploration  checked settings, one prompt's samples and their EDA scores
    views        plots, the sample table, tokens coloured by entropy
    ui           the gr.Blocks app, `launch`, and the Space card's metadata

`spaces/entropy-explorer/app.py` and `heal-hf space` both call `build_app`.
"""

from .ui import build_app, launch, space_card_data

__all__ = ["build_app", "launch", "space_card_data"]
