/** What makes a .py file a marimo notebook, and the file a new one starts from. */

/** A marimo notebook imports marimo and defines `marimo.App(...)`. */
export function isMarimoNotebook(source: string): boolean {
  return /^\s*import marimo\b/m.test(source) && /\bmarimo\.App\(/.test(source);
}

/** The smallest notebook marimo opens: one cell importing marimo as mo. */
export const NEW_NOTEBOOK = `import marimo

app = marimo.App()


@app.cell
def _():
    import marimo as mo
    return (mo,)


if __name__ == "__main__":
    app.run()
`;
