import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import marimo as mo
    return (mo,)


@app.cell
def _(mo):
    mo.md("""
    # Multiplayer marimo

    Open this notebook in a second browser (or invite a colleague): you both type in the
    same cells, see each other's cursors, and share one kernel and its outputs.
    """)
    return


@app.cell
def _(mo):
    slider = mo.ui.slider(1, 20, value=5, label="How many squares?")
    slider
    return (slider,)


@app.cell
def _(slider):
    squares = [n * n for n in range(1, slider.value + 1)]
    squares
    return (squares,)


@app.cell
def _(mo, squares):
    mo.md(f"The sum of the first squares is **{sum(squares)}**.")
    return


@app.cell
def _(squares):
    print("largest square:", max(squares))
    return


if __name__ == "__main__":
    app.run()
