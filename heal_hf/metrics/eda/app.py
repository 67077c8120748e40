"""The EDA metric's Space: evaluate's standard widget where it runs, a small equivalent otherwise."""

import json
from pathlib import Path

import evaluate
import gradio as gr
from evaluate.utils import launch_gradio_widget

HERE = Path(__file__).parent
# The folder this app sits in is the metric (on the Hub Space and in heal-hf alike).
module = evaluate.load(str(HERE))

if hasattr(gr, "inputs"):  # gradio < 4, where evaluate's widget still works
    launch_gradio_widget(module)
else:
    # evaluate 0.4's widget uses gr.inputs, removed in gradio 4: the same inputs as JSON.
    def compute(predictions: str, references: str, bins: float) -> dict:
        try:
            preds, refs = json.loads(predictions), json.loads(references)
            return module.compute(predictions=preds, references=refs, bins=int(bins))
        except (ValueError, TypeError) as err:
            raise gr.Error(f"{err}") from None

    readme = (HERE / "README.md").read_text().split("---", 2)[-1]
    demo = gr.Interface(
        fn=compute,
        inputs=[
            gr.Textbox(label="predictions: target-domain entropy sequences (JSON list of lists)",
                       value="[[2.0, 1.4, 1.0, 1.3, 0.8, 0.6, 0.9, 0.4], [0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05]]"),
            gr.Textbox(label="references: general-domain entropy sequences (JSON list of lists)",
                       value="[[2.1, 1.4, 0.9, 1.6, 0.7, 0.5, 1.2, 0.4], [1.8, 1.6, 0.8, 1.1, 0.9, 0.6, 0.8, 0.5], "
                             "[2.4, 1.2, 1.1, 1.3, 0.6, 0.9, 0.7, 0.3], [1.9, 1.5, 1.0, 0.9, 1.0, 0.4, 1.0, 0.6], "
                             "[2.2, 1.1, 1.2, 1.4, 0.8, 0.7, 0.6, 0.4], [2.0, 1.7, 0.7, 1.2, 0.5, 0.8, 0.9, 0.5]]"),
            gr.Number(label="bins (K)", value=4, precision=0),
        ],
        outputs=gr.JSON(label="EDA"),
        title="Metric: EDA (Entropy Dynamics Alignment)",
        article=readme,
    )
    demo.launch()
