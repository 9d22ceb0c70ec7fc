import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import marimo as mo

    return (mo,)


@app.cell
def _(mo):
    slider = mo.ui.slider(1, 10, value=3, label="n")
    slider  # noqa: B018 (a marimo cell shows its last expression)
    return (slider,)


@app.cell
def _(slider):
    squared = slider.value**2
    squared  # noqa: B018
    return


@app.cell
def _():
    a = 2
    return (a,)


@app.cell
def _(a):
    b = a * 10
    print("b is", b)
    return (b,)


@app.cell
def _(b, mo):
    c = b + 1
    mo.md(f"# Chain\n\nc = **{c}**")
    return


if __name__ == "__main__":
    app.run()
