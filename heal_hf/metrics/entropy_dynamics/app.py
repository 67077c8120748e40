"""The entropy_dynamics measurement's Space: evaluate's standard widget where it runs, a small equivalent otherwise."""

import json
from pathlib import Path

import evaluate
import gradio as gr
from evaluate.utils import launch_gradio_widget

HERE = Path(__file__).parent
# The folder this app sits in is the measurement (on the Hub Space and in heal-hf alike).
module = evaluate.load(str(HERE), module_type="measurement")

if hasattr(gr, "inputs"):  # gradio < 4, where evaluate's widget still works
    launch_gradio_widget(module)
else:
    # evaluate 0.4's widget uses gr.inputs, removed in gradio 4: the same inputs as JSON.
    def compute(data: str, bins: float) -> dict:
        try:
            return module.compute(data=json.loads(data), bins=int(bins))
        except (ValueError, TypeError) as err:
            raise gr.Error(f"{err}") from None

    readme = (HERE / "README.md").read_text().split("---", 2)[-1]
    demo = gr.Interface(
        fn=compute,
        inputs=[
            gr.Textbox(label="data: per-token entropy sequences (JSON list of lists, nats)",
                       value="[[2.1, 1.4, 0.9, 1.6, 0.7, 0.5, 1.2, 0.4], [1.8, 1.6, 0.8, 1.1, 0.9, 0.6, 0.8, 0.5], "
                             "[0.05, 0.04, 0.05, 0.03, 0.05, 0.04, 0.05, 0.04]]"),
            gr.Number(label="bins (K)", value=4, precision=0),
        ],
        outputs=gr.JSON(label="entropy dynamics"),
        title="Measurement: entropy dynamics",
        article=readme,
    )
    demo.launch()
