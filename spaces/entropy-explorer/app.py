"""The Entropy Explorer Space. The app lives in heal_hf.app.space so that `heal-hf space` runs the same one.

Run locally with `python app.py` (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT choose host and port).
"""

from heal_hf.app.space import build_app

demo = build_app()

if __name__ == "__main__":
    demo.launch()
