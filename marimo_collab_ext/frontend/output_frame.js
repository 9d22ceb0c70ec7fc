/*
 * The notebook's output frame: marimo's own compiled frontend (the kernel's version) renders
 * every cell's output here, and this script, which runs before marimo's app, connects it to
 * the page instead of a marimo server.
 *
 * The frame is sandboxed (an opaque origin, by the iframe's sandbox and by the CSP `sandbox`
 * header it is served with): it holds no credentials and never talks to the server. marimo's
 * app believes it has a kernel connection: its WebSocket and its `api/kernel/*` calls are
 * answered here and carried to and from the page with postMessage. The page checks every
 * message for the user's role and for the UI elements really shown (docs/widgets.md).
 *
 * Plain JavaScript, served inline: it must run before marimo's module scripts.
 */
(function () {
  "use strict";
  const page = window.parent;
  if (page === window) {
    return; // opened on its own: there is nobody to render for
  }
  const post = (message) => page.postMessage(message, "*");
  const PREFIX = "mc:";

  // ---------------------------------------------------------------- kernel connection
  const kernelSockets = new Set();
  const backlog = []; // kernel messages that arrived before marimo opened its socket

  class PageSocket extends EventTarget {
    constructor(url) {
      super();
      this.url = String(url);
      this.readyState = PageSocket.CONNECTING;
      this.protocol = "";
      this.extensions = "";
      this.binaryType = "blob";
      this.bufferedAmount = 0;
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      const path = new URL(this.url, document.baseURI).pathname;
      const isKernel = path.endsWith("/ws");
      setTimeout(() => {
        if (this.readyState !== PageSocket.CONNECTING) {
          return;
        }
        if (!isKernel) {
          // Only marimo's kernel socket exists here; anything else finds no server.
          this._closed(1006, "no server in the output frame");
          return;
        }
        this.readyState = PageSocket.OPEN;
        kernelSockets.add(this);
        this._fire(new Event("open"));
        backlog.splice(0).forEach((text) => this.deliver(text));
        announceReady();
      }, 0);
    }

    send() {
      // marimo's read mode sends nothing on its socket; its requests are fetches (below).
    }

    close(code, reason) {
      this._closed(code || 1000, reason || "");
    }

    deliver(text) {
      if (this.readyState === PageSocket.OPEN) {
        this._fire(new MessageEvent("message", { data: text }));
      }
    }

    _closed(code, reason) {
      if (this.readyState === PageSocket.CLOSED) {
        return;
      }
      this.readyState = PageSocket.CLOSED;
      kernelSockets.delete(this);
      this._fire(new CloseEvent("close", { code, reason, wasClean: code === 1000 }));
    }

    _fire(event) {
      this.dispatchEvent(event);
      const handler = this["on" + event.type];
      if (typeof handler === "function") {
        handler.call(this, event);
      }
    }
  }
  ["CONNECTING", "OPEN", "CLOSING", "CLOSED"].forEach((name, value) => {
    PageSocket[name] = value;
    PageSocket.prototype[name] = value;
  });
  window.WebSocket = PageSocket;

  // The page starts sending once marimo's app is listening and our boxes have a home.
  let announced = false;
  function announceReady() {
    if (!announced && kernelSockets.size > 0 && outputsRoot) {
      announced = true;
      post({ type: PREFIX + "ready" });
    }
  }

  /** A marimo notification, `{op, data}`, to marimo's app as if from its kernel socket. */
  function toKernelSocket(op, data) {
    const text = JSON.stringify({ op, data: Object.assign({ op }, data) });
    if (kernelSockets.size === 0) {
      backlog.push(text);
    }
    kernelSockets.forEach((socket) => socket.deliver(text));
  }

  // ---------------------------------------------------------------- marimo's HTTP calls
  const realFetch = window.fetch.bind(window);
  const answer = (body, status) =>
    new Response(JSON.stringify(body), {
      status: status || 200,
      headers: { "Content-Type": "application/json" },
    });

  /** What marimo's request client asks its server, turned into a message to the page. */
  const KERNEL_CALLS = {
    "api/kernel/set_ui_element_value": (body) => ({
      type: PREFIX + "set-ui-values",
      objectIds: body.objectIds,
      values: body.values,
    }),
    "api/kernel/function_call": (body) => ({
      type: PREFIX + "function-call",
      functionCallId: body.functionCallId,
      namespace: body.namespace,
      functionName: body.functionName,
      args: body.args,
    }),
    "api/kernel/set_model_value": (body) => ({
      type: PREFIX + "set-model-value",
      modelId: body.modelId,
      message: body.message,
      buffers: body.buffers,
    }),
  };

  async function kernelCall(route, request) {
    if (route === "health") {
      return answer({ status: "healthy" });
    }
    const toMessage = KERNEL_CALLS[route];
    if (!toMessage) {
      return answer({ detail: "not available in a shared notebook" }, 404);
    }
    let body;
    try {
      body = JSON.parse(await request.text());
    } catch (_error) {
      return answer({ detail: "bad request" }, 400);
    }
    post(toMessage(body || {}));
    return answer({ success: true });
  }

  window.fetch = function (input, init) {
    let request;
    try {
      request = new Request(input, init);
    } catch (_error) {
      return realFetch(input, init);
    }
    const url = new URL(request.url, document.baseURI);
    const route = url.host === location.host && url.pathname.match(/\/(health|api\/.*)$/);
    return route ? kernelCall(route[1], request) : realFetch(input, init);
  };

  // ---------------------------------------------------------------- outputs
  // One absolutely placed box per cell, at the top and width of the cell's slot in the
  // page; the page lays out its editors around the heights reported back.
  const boxes = new Map(); // cell id -> box
  let outputsRoot = null;
  let pendingSizes = null;

  const sizeObserver = new ResizeObserver((entries) => {
    pendingSizes = pendingSizes || new Map();
    entries.forEach((entry) => {
      const id = entry.target.dataset.mcOutput;
      if (boxes.get(id) === entry.target) {
        pendingSizes.set(id, Math.ceil(entry.target.getBoundingClientRect().height));
      }
    });
    requestAnimationFrame(flushSizes);
  });

  function flushSizes() {
    if (!pendingSizes) {
      return;
    }
    post({ type: PREFIX + "sizes", sizes: Array.from(pendingSizes) });
    pendingSizes = null;
  }

  function box(id) {
    let found = boxes.get(id);
    if (!found) {
      found = document.createElement("div");
      // No marimo `id="cell-<id>"`: marimo's element functions would then look the cell up
      // in its own notebook state, which stays empty here (outputs arrive as mc:outputs).
      found.className = "mc-output";
      found.dataset.mcOutput = id;
      found.dataset.cellId = id;
      outputsRoot.appendChild(found);
      boxes.set(id, found);
      sizeObserver.observe(found);
    }
    return found;
  }

  function hasData(output) {
    return output && output.data !== undefined && output.data !== null && output.data !== "";
  }

  /** marimo's own renderer for one output message: `<marimo-mime-renderer>`. */
  function mimeRenderer(mimetype, dataJson) {
    const element = document.createElement("marimo-mime-renderer");
    element.setAttribute("data-mime", JSON.stringify(mimetype || "text/plain"));
    element.setAttribute("data-data", dataJson);
    return element;
  }

  // Controls a person who may not set values sees disabled (marimo's own `disabled`); the
  // page refuses their changes anyway and puts back any that get through (tables, nested).
  let readOnly = true;
  const DISABLEABLE = new Set(["marimo-button", "marimo-checkbox", "marimo-code-editor",
    "marimo-date", "marimo-date-range", "marimo-datetime", "marimo-dropdown", "marimo-matrix",
    "marimo-multiselect", "marimo-number", "marimo-radio", "marimo-range-slider",
    "marimo-slider", "marimo-switch", "marimo-text-area", "marimo-text"]);

  function disableControls(html) {
    const template = document.createElement("template"); // inert: nothing upgrades or runs
    template.innerHTML = html;
    template.content.querySelectorAll("marimo-ui-element > *").forEach((control) => {
      if (DISABLEABLE.has(control.localName)) {
        control.setAttribute("data-disabled", "true");
      }
    });
    return template.innerHTML;
  }

  const outputs = new Map(); // cell id -> [output, status], to render again on a role change

  function renderOutput(id, output, status) {
    outputs.set(id, [output, status]);
    const target = box(id);
    target.dataset.status = status || "idle";
    let dataJson = "";
    if (hasData(output)) {
      const html = output.mimetype === "text/html" && typeof output.data === "string";
      dataJson = JSON.stringify(html && readOnly ? disableControls(output.data) : output.data);
    }
    const key = dataJson && output.mimetype + "\n" + dataJson;
    if (target.mcKey === key) {
      return;
    }
    target.mcKey = key;
    target.replaceChildren(...(key ? [mimeRenderer(output.mimetype, dataJson)] : []));
    target.classList.toggle("mc-empty", !key);
  }

  // ---------------------------------------------------------------- UI values
  // marimo's own registry of UI element values (`UIElementRegistry.INSTANCE`): a value set
  // there before an element appears is the one it starts with, as after marimo's kernel-ready.
  const REGISTRY_KEY = "_marimo_private_UIElementRegistry";

  function applyValues(values) {
    const registry = window[REGISTRY_KEY];
    if (!registry) {
      return;
    }
    Object.keys(values).forEach((objectId) => {
      const value = values[objectId];
      if (value === undefined) {
        return;
      }
      if (registry.has(objectId)) {
        registry.broadcastMessage(objectId, { type: "marimo-ui-value-update", value }, []);
      } else {
        registry.set(objectId, value);
      }
    });
  }

  function place(cells, width) {
    const seen = new Set();
    cells.forEach(([id, top, shown]) => {
      const target = box(id);
      seen.add(id);
      target.style.top = top + "px";
      target.style.width = width + "px";
      target.hidden = !shown;
    });
    boxes.forEach((target, id) => {
      if (!seen.has(id)) {
        sizeObserver.unobserve(target);
        target.remove();
        boxes.delete(id);
        outputs.delete(id);
      }
    });
  }

  // ---------------------------------------------------------------- messages from the page
  const HANDLERS = {
    outputs(message) {
      (message.cells || []).forEach((cell) => renderOutput(cell.id, cell.output, cell.status));
    },
    status(message) {
      const known = outputs.get(message.id);
      if (known) {
        known[1] = message.status;
        box(message.id).dataset.status = message.status || "idle";
      }
    },
    layout(message) {
      place(message.cells || [], message.width);
    },
    kernel(message) {
      toKernelSocket(message.op, message.data || {});
    },
    "ui-values"(message) {
      applyValues(message.values || {});
    },
    "read-only"(message) {
      if (readOnly !== !!message.readOnly) {
        readOnly = !!message.readOnly;
        outputs.forEach(([output, status], id) => renderOutput(id, output, status));
      }
    },
  };

  window.addEventListener("message", (event) => {
    if (event.source !== page || !outputsRoot) {
      return; // only the page that holds this frame may drive it
    }
    const data = event.data;
    if (!data || typeof data.type !== "string" || !data.type.startsWith(PREFIX)) {
      return;
    }
    const handler = HANDLERS[data.type.slice(PREFIX.length)];
    if (handler) {
      handler(data);
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    outputsRoot = document.createElement("div");
    outputsRoot.id = "mc-outputs";
    document.body.appendChild(outputsRoot);
    announceReady();
  });
})();
