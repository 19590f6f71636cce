// nanohook dashboard: a small single-page app over the public API.
//
// Everything shown comes from /api/v1 with the customer's API key, which is
// kept in sessionStorage (this tab only) and never in a cookie, so no other
// site can make the browser send it. API data only ever reaches the page as
// textContent: nothing here builds markup from strings, and the server's
// Content-Security-Policy would refuse inline script anyway.
"use strict";

(() => {
  // Relative to /dashboard/, so the dashboard keeps working behind a proxy
  // that mounts the whole service under a prefix.
  const API = "../api/v1";
  const KEY_STORAGE = "nanohook.apiKey";
  const PAGE_SIZE = 25;
  const POLL_MS = 500;
  const POLL_LIMIT_MS = 30000;

  const state = {
    key: sessionStorage.getItem(KEY_STORAGE),
    // view counts renders: async work of a view that is no longer shown
    // checks it and drops its result instead of drawing over the new view.
    view: 0,
  };

  const $ = (id) => document.getElementById(id);

  // --- DOM building: text only, never markup -------------------------------

  // h creates an element. props: class, text, on<event> handlers, and
  // attributes; children: nodes or strings (appended as text).
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = String(v);
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c !== null && c !== undefined && c !== false) el.append(typeof c === "object" ? c : String(c));
    }
    return el;
  }

  // dl renders [term, value] pairs, skipping absent values.
  function dl(pairs) {
    const list = h("dl", { class: "fields" });
    for (const [term, value] of pairs) {
      if (value === null || value === undefined || value === "") continue;
      list.append(h("div", null, h("dt", { text: term }), h("dd", null, value)));
    }
    return list;
  }

  function time(s) {
    if (!s) return "—";
    const d = new Date(s);
    return h("time", { datetime: s, title: s }, isNaN(d) ? s : d.toLocaleString());
  }

  function badge(status) {
    return h("span", { class: "badge status-" + status, text: status });
  }

  function httpBadge(status) {
    if (status === null || status === undefined) return h("span", { class: "badge bad", text: "no response" });
    const ok = status >= 200 && status < 300;
    return h("span", { class: "badge " + (ok ? "ok" : "bad"), text: "HTTP " + status });
  }

  function link(href, text) {
    return h("a", { href }, text);
  }

  // message writes text into a status or error line and shows it.
  function message(el, text) {
    el.textContent = text;
    el.hidden = !text;
  }

  // focusHeading moves focus to a new view's heading so that keyboard and
  // screen-reader users land on what changed.
  function focusHeading(view) {
    const h1 = view.querySelector("h1");
    if (h1) h1.focus({ preventScroll: false });
  }

  // busy disables a button while its request runs and restores it after.
  async function busy(button, label, work) {
    const idle = button.textContent;
    button.disabled = true;
    button.textContent = label;
    try {
      return await work();
    } finally {
      button.disabled = false;
      button.textContent = idle;
    }
  }

  // --- time inputs ----------------------------------------------------------

  // localInput formats a Date for <input type="datetime-local">.
  function localInput(d) {
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  // rfc3339 turns a datetime-local value (local time) into the API's UTC
  // form, seconds precision.
  function rfc3339(local) {
    const d = new Date(local);
    if (isNaN(d)) return null;
    return d.toISOString().replace(/\.\d{3}Z$/, "Z");
  }

  // --- the API --------------------------------------------------------------

  // INVALID_KEY is what a 401 means to someone who typed a key.
  const INVALID_KEY = "This API key is not valid";

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // api calls the public API and returns its envelope, or throws an
  // ApiError carrying the API's own message.
  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + state.key, Accept: "application/json" };
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(API + path, init);
    } catch (err) {
      throw new ApiError(0, "network_error", "Could not reach the API: " + err.message);
    }
    let env;
    try {
      env = await res.json();
    } catch {
      throw new ApiError(res.status, "bad_response", `The API answered ${res.status} without JSON.`);
    }
    if (!env.success) {
      const e = env.error || {};
      const err = new ApiError(res.status, e.code || "error", e.message || `HTTP ${res.status}`);
      // A stored key that stops working (revoked) ends the session; a key
      // being tried at sign-in is not stored yet and just shows the error.
      if (res.status === 401 && sessionStorage.getItem(KEY_STORAGE)) signOut(INVALID_KEY + " (it may have been revoked); sign in with another.");
      throw err;
    }
    return env;
  }

  // --- sign in and out ------------------------------------------------------

  function showSignIn(error) {
    state.view++;
    $("view").hidden = true;
    $("view").replaceChildren();
    $("sign-out").hidden = true;
    $("sign-in").hidden = false;
    message($("sign-in-error"), error || "");
    $("api-key").focus();
  }

  function signOut(reason) {
    sessionStorage.removeItem(KEY_STORAGE);
    state.key = null;
    if (location.hash) history.replaceState(null, "", location.pathname + location.search);
    showSignIn(reason);
  }

  async function signIn(ev) {
    ev.preventDefault();
    const key = $("api-key").value.trim();
    const error = $("sign-in-error");
    if (!key) {
      message(error, "Enter an API key.");
      return;
    }
    state.key = key;
    try {
      // Listing endpoints is the cheapest call that proves the key works.
      await busy($("sign-in-submit"), "Signing in…", () => api("GET", "/webhooks?limit=1"));
    } catch (err) {
      state.key = null;
      // The API's 401 speaks of credentials in general; here there is only
      // the key just typed.
      message(error, err.status === 401 ? INVALID_KEY + "." : err.message);
      $("api-key").select();
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    $("api-key").value = "";
    message(error, "");
    $("sign-in").hidden = true;
    $("sign-out").hidden = false;
    route();
  }

  // --- routing --------------------------------------------------------------

  // route draws the view the URL's fragment names: #/ (endpoints),
  // #/webhooks/{id} (one endpoint and its deliveries), #/deliveries/{id}.
  function route() {
    if (!state.key) return showSignIn();
    $("sign-in").hidden = true;
    $("sign-out").hidden = false;
    const hash = location.hash || "#/";
    let m;
    if ((m = /^#\/webhooks\/(\d+)$/.exec(hash))) return showEndpoint(m[1]);
    if ((m = /^#\/deliveries\/(\d+)$/.exec(hash))) return showDelivery(m[1]);
    return showEndpoints();
  }

  // mount replaces the view and returns a function telling whether it is
  // still the current one.
  function mount(...nodes) {
    const id = ++state.view;
    const view = $("view");
    view.replaceChildren(...nodes);
    view.hidden = false;
    focusHeading(view);
    return () => state.view === id;
  }

  // --- endpoints ------------------------------------------------------------

  function showEndpoints() {
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const body = h("tbody");
    const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
    const table = h("table", { class: "list", id: "endpoints" },
      h("caption", { class: "sr-only" }, "Endpoints"),
      h("thead", null, h("tr", null,
        ["ID", "URL", "Events", "Status"].map((t) => h("th", { scope: "col" }, t)),
        h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Open")))),
      body);
    const empty = h("p", { class: "muted", hidden: true },
      "No endpoints yet. Register one with POST /api/v1/webhooks.");
    const current = mount(
      h("h1", { tabindex: "-1" }, "Endpoints"),
      h("p", { class: "muted" }, "Where your job events are delivered. Open an endpoint to see its deliveries and act on it."),
      error, h("div", { class: "table-wrap" }, table), empty, more);

    let cursor = null;
    const load = async () => {
      const q = new URLSearchParams({ limit: PAGE_SIZE });
      if (cursor) q.set("cursor", cursor);
      try {
        const env = await api("GET", "/webhooks?" + q);
        if (!current()) return;
        for (const ep of env.data) body.append(endpointRow(ep));
        cursor = env.next_cursor;
        more.hidden = !cursor;
        empty.hidden = body.children.length > 0;
        message(error, "");
      } catch (err) {
        if (current()) message(error, err.message);
      }
    };
    more.addEventListener("click", () => busy(more, "Loading…", load));
    load();
  }

  function endpointRow(ep) {
    const href = "#/webhooks/" + encodeURIComponent(ep.id);
    return h("tr", null,
      h("td", null, link(href, String(ep.id))),
      h("td", { class: "url" }, h("code", null, ep.url), ep.description ? h("div", { class: "muted" }, ep.description) : null),
      h("td", null, ep.events.join(", ")),
      h("td", null, badge(ep.status), ep.disabled_reason ? h("div", { class: "reason" }, ep.disabled_reason) : null),
      h("td", null, link(href, "Deliveries")));
  }

  // --- one endpoint -----------------------------------------------------------

  async function showEndpoint(id) {
    const summary = h("div");
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const actions = h("div", { class: "actions" });
    const deliveries = h("section", { "aria-labelledby": "deliveries-title" });
    const current = mount(
      h("p", { class: "crumbs" }, link("#/", "← Endpoints")),
      h("h1", { tabindex: "-1" }, "Endpoint " + id),
      error, summary, actions, deliveries);

    let ep;
    try {
      ep = (await api("GET", "/webhooks/" + id)).data;
    } catch (err) {
      if (current()) message(error, err.message);
      return;
    }
    if (!current()) return;
    const list = deliveryList(id, current);
    const redraw = (e) => {
      ep = e;
      summary.replaceChildren(endpointSummary(ep));
    };
    redraw(ep);
    // The test's attempt is as wide as the page: headers and bodies need room.
    const testResult = h("div", { id: "test-result", class: "test-result", "aria-live": "polite" });
    actions.append(
      h("h2", null, "Actions"),
      h("div", { class: "cards" },
        testCard(id, list.reload, testResult),
        rotateCard(id),
        recoverCard(id, list.reload),
        ep.status === "disabled" ? enableCard(id, redraw) : null),
      testResult);
    deliveries.append(list.node);
  }

  function endpointSummary(ep) {
    return dl([
      ["URL", h("code", { class: "url" }, ep.url)],
      ["Events", ep.events.join(", ")],
      ["Status", h("span", null, badge(ep.status), ep.disabled_reason ? h("span", { class: "reason" }, " " + ep.disabled_reason) : null)],
      ["Description", ep.description],
      ["Created", time(ep.created_at)],
      ["Updated", time(ep.updated_at)],
    ]);
  }

  function card(title, ...children) {
    return h("section", { class: "card" }, h("h3", null, title), ...children);
  }

  function testCard(id, reload, result) {
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const button = h("button", { type: "button", id: "send-test" }, "Send test");
    button.addEventListener("click", async () => {
      message(error, "");
      result.replaceChildren();
      try {
        const res = (await busy(button, "Sending…", () => api("POST", "/webhooks/" + id + "/test"))).data;
        result.replaceChildren(
          h("p", { class: res.succeeded ? "ok-text" : "error-text" },
            res.succeeded ? "Test: the endpoint accepted the ping. " : "Test: the endpoint did not accept the ping. ",
            link("#/deliveries/" + encodeURIComponent(res.delivery_id), "Delivery " + res.delivery_id)),
          attemptView(res.attempt));
        reload();
      } catch (err) {
        message(error, err.message);
      }
    });
    return card("Send a test",
      h("p", { class: "muted" }, "Sends a signed ping now and shows what the endpoint answered. Works on disabled endpoints too."),
      button, error);
  }

  function rotateCard(id) {
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const result = h("div", { "aria-live": "polite" });
    const overlap = h("select", { id: "rotate-overlap", name: "overlap_seconds" },
      h("option", { value: "0" }, "no overlap: stop at once"),
      h("option", { value: "3600" }, "1 hour"),
      h("option", { value: "86400", selected: true }, "24 hours"),
      h("option", { value: "604800" }, "7 days"));
    const button = h("button", { type: "submit", id: "rotate-secret" }, "Rotate secret");
    const form = h("form", { class: "inline" },
      h("label", { for: "rotate-overlap" }, "Old secret keeps signing for"), overlap, button);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      message(error, "");
      result.replaceChildren();
      try {
        const body = { overlap_seconds: Number(overlap.value) };
        const res = (await busy(button, "Rotating…", () => api("POST", "/webhooks/" + id + "/rotate-secret", body))).data;
        result.replaceChildren(secretView(res));
      } catch (err) {
        message(error, err.message);
      }
    });
    return card("Rotate the signing secret",
      h("p", { class: "muted" }, "Deliveries are signed with a new secret from now on; during the overlap they also carry X-Nano-Signature-Previous made with the old one."),
      form, error, result);
  }

  function secretView(res) {
    const value = h("input", { id: "new-secret", type: "text", readonly: true, value: res.secret_key, "aria-label": "New signing secret", spellcheck: "false" });
    const copy = h("button", { type: "button", class: "secondary" }, "Copy");
    const copied = h("span", { class: "muted", role: "status" });
    copy.addEventListener("click", async () => {
      value.select();
      try {
        await navigator.clipboard.writeText(value.value);
        copied.textContent = "Copied.";
      } catch {
        copied.textContent = "Press Ctrl+C (⌘C) to copy the selected secret.";
      }
    });
    return h("div", { class: "secret", role: "alert" },
      h("p", null, h("strong", null, "New secret, shown only this once."), " Store it in your receiver now: it cannot be retrieved again."),
      h("div", { class: "secret-row" }, value, copy, copied),
      res.previous_secret_expires_at
        ? h("p", { class: "muted" }, "The previous secret stays valid until ", time(res.previous_secret_expires_at), ".")
        : h("p", { class: "muted" }, "The previous secret is no longer valid."));
  }

  function recoverCard(id, reload) {
    const error = h("p", { id: "recover-error", class: "error", role: "alert", hidden: true });
    const result = h("p", { id: "recover-result", class: "ok-text", role: "status", hidden: true });
    const since = h("input", { id: "recover-since", type: "datetime-local", required: true, value: localInput(new Date(Date.now() - 24 * 3600 * 1000)) });
    const button = h("button", { type: "submit", id: "recover" }, "Recover");
    const form = h("form", { class: "inline" }, h("label", { for: "recover-since" }, "Failed deliveries since"), since, button);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      message(error, "");
      message(result, "");
      const t = rfc3339(since.value);
      if (!t) {
        message(error, "since: enter a date and time.");
        return;
      }
      try {
        const res = (await busy(button, "Recovering…", () => api("POST", "/webhooks/" + id + "/recover", { since: t }))).data;
        message(result, `Queued ${res.queued} failed ${res.queued === 1 ? "delivery" : "deliveries"} for delivery now.`);
        reload();
      } catch (err) {
        message(error, err.message);
      }
    });
    return card("Recover failed deliveries",
      h("p", { class: "muted" }, "After fixing the endpoint, send again every delivery that failed since a time."),
      form, result, error);
  }

  function enableCard(id, redraw) {
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const button = h("button", { type: "button", id: "enable" }, "Re-enable endpoint");
    const section = card("Re-enable",
      h("p", { class: "muted" }, "This endpoint is disabled and gets no deliveries. Re-enable it, then recover what failed meanwhile."),
      button, error);
    button.addEventListener("click", async () => {
      message(error, "");
      try {
        const ep = (await busy(button, "Enabling…", () => api("PATCH", "/webhooks/" + id, { status: "active" }))).data;
        redraw(ep);
        section.remove();
      } catch (err) {
        message(error, err.message);
      }
    });
    return section;
  }

  // --- deliveries of an endpoint ----------------------------------------------

  // deliveryList is the filterable, paginated history of one endpoint. It
  // returns its node and reload, which starts again from the first page.
  function deliveryList(id, current) {
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const status = h("select", { id: "filter-status", name: "status" },
      h("option", { value: "" }, "any"),
      ["pending", "succeeded", "failed", "cancelled"].map((s) => h("option", { value: s }, s)));
    const event = h("select", { id: "filter-event", name: "event" },
      h("option", { value: "" }, "any"),
      ["job.completed", "job.failed", "ping"].map((s) => h("option", { value: s }, s)));
    const since = h("input", { id: "filter-since", name: "since", type: "datetime-local" });
    const apply = h("button", { type: "submit", id: "filter-apply" }, "Apply filters");
    const form = h("form", { class: "filters", "aria-label": "Delivery filters" },
      h("div", null, h("label", { for: "filter-status" }, "Status"), status),
      h("div", null, h("label", { for: "filter-event" }, "Event"), event),
      h("div", null, h("label", { for: "filter-since" }, "Created since"), since),
      h("div", { class: "filter-buttons" }, apply));
    const body = h("tbody");
    const table = h("table", { class: "list", id: "deliveries" },
      h("caption", { class: "sr-only" }, "Deliveries"),
      h("thead", null, h("tr", null,
        ["ID", "Event", "Status", "Attempts", "Next attempt", "Last error", "Created"].map((t) => h("th", { scope: "col" }, t)))),
      body);
    const empty = h("p", { class: "muted", hidden: true }, "No deliveries match.");
    const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
    const node = h("div", null,
      h("h2", { id: "deliveries-title" }, "Deliveries"),
      form, error, h("div", { class: "table-wrap" }, table), empty, more);

    let cursor = null;
    let generation = 0; // a reload makes pages still loading for the old filters stale
    const query = () => {
      const q = new URLSearchParams({ limit: PAGE_SIZE });
      if (status.value) q.set("status", status.value);
      if (event.value) q.set("event", event.value);
      if (since.value) {
        const t = rfc3339(since.value);
        if (t) q.set("since", t);
      }
      if (cursor) q.set("cursor", cursor);
      return q;
    };
    const load = async (fresh) => {
      const gen = fresh ? ++generation : generation;
      if (fresh) cursor = null;
      try {
        const env = await api("GET", "/webhooks/" + id + "/deliveries?" + query());
        if (!current() || gen !== generation) return;
        if (fresh) body.replaceChildren();
        for (const d of env.data) body.append(deliveryRow(d));
        cursor = env.next_cursor;
        more.hidden = !cursor;
        empty.hidden = body.children.length > 0;
        table.hidden = body.children.length === 0;
        message(error, "");
      } catch (err) {
        if (current()) message(error, err.message);
      }
    };
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      busy(apply, "Loading…", () => load(true));
    });
    more.addEventListener("click", () => busy(more, "Loading…", () => load(false)));
    load(true);
    return { node, reload: () => load(true) };
  }

  function deliveryRow(d) {
    return h("tr", null,
      h("td", null, link("#/deliveries/" + encodeURIComponent(d.id), String(d.id))),
      h("td", null, d.event),
      h("td", null, badge(d.status)),
      h("td", { class: "num" }, String(d.attempt_count)),
      h("td", null, d.next_attempt_at ? time(d.next_attempt_at) : "—"),
      h("td", { class: "wrap" }, d.last_error || ""),
      h("td", null, time(d.created_at)));
  }

  // --- one delivery -------------------------------------------------------------

  function showDelivery(id) {
    const crumbs = h("p", { class: "crumbs" }, link("#/", "← Endpoints"));
    const error = h("p", { id: "delivery-error", class: "error", role: "alert", hidden: true });
    const note = h("p", { id: "delivery-note", class: "note", role: "status", hidden: true });
    const summary = h("div");
    const payload = h("section", { "aria-labelledby": "payload-title" });
    const attempts = h("section", { "aria-labelledby": "attempts-title" });
    const retry = h("button", { type: "button", id: "retry" }, "Retry now");
    const refresh = h("button", { type: "button", class: "secondary" }, "Refresh");
    const current = mount(
      crumbs,
      h("h1", { tabindex: "-1" }, "Delivery " + id),
      error, summary, h("div", { class: "buttons" }, retry, refresh), note, payload, attempts);

    const draw = (d) => {
      crumbs.replaceChildren(link("#/", "Endpoints"), " / ",
        link("#/webhooks/" + encodeURIComponent(d.webhook_id), "Endpoint " + d.webhook_id));
      summary.replaceChildren(dl([
        ["Status", badge(d.status)],
        ["Event", d.event],
        ["Event ID", h("code", null, d.event_id)],
        ["Attempts", String(d.attempt_count)],
        ["Next attempt", d.next_attempt_at ? time(d.next_attempt_at) : null],
        ["Last error", d.last_error],
        ["Created", time(d.created_at)],
        ["Updated", time(d.updated_at)],
      ]));
      payload.replaceChildren(...payloadView(d.payload));
      const newestFirst = [...d.attempts].reverse();
      // The API shows the newest attempts only (at most 25, fewer when
      // they are large); attempt_count counts them all.
      const shown = d.attempts.length;
      const title = shown < d.attempt_count ? `Attempts (newest ${shown} of ${d.attempt_count})` : `Attempts (${shown})`;
      attempts.replaceChildren(
        h("h2", { id: "attempts-title" }, title),
        ...(newestFirst.length ? newestFirst.map(attemptView) : [h("p", { class: "muted" }, "No attempt yet.")]));
    };
    const fetchDelivery = async () => (await api("GET", "/deliveries/" + id)).data;
    const reload = async () => {
      try {
        const d = await fetchDelivery();
        if (current()) draw(d);
        return d;
      } catch (err) {
        if (current()) message(error, err.message);
        return null;
      }
    };

    refresh.addEventListener("click", () => {
      message(error, "");
      busy(refresh, "Refreshing…", reload);
    });
    retry.addEventListener("click", async () => {
      message(error, "");
      message(note, "");
      await busy(retry, "Retrying…", async () => {
        let before;
        try {
          before = newestNumber(await fetchDelivery());
          await api("POST", "/deliveries/" + id + "/retry");
        } catch (err) {
          if (current()) message(error, err.message);
          return;
        }
        if (!current()) return;
        message(note, "Retry queued; waiting for the attempt…");
        await waitForAttempt(before);
      });
    });

    // newestNumber is the number of the delivery's newest attempt, 0
    // before the first. The API lists the newest attempts only, so their
    // count stops growing; their numbers do not.
    const newestNumber = (d) => d.attempts.length ? d.attempts[d.attempts.length - 1].number : 0;

    // waitForAttempt polls until an attempt numbered beyond `before`
    // arrives (the engine makes it in the background), then reports it.
    const waitForAttempt = async (before) => {
      const deadline = Date.now() + POLL_LIMIT_MS;
      while (current() && Date.now() < deadline) {
        const d = await reload();
        if (!current()) return;
        if (d && newestNumber(d) > before && d.status !== "pending") {
          const a = d.attempts[d.attempts.length - 1];
          message(note, `Attempt ${a.number}: ${a.response_status ? "HTTP " + a.response_status : "no response"}; status: ${d.status}.`);
          return;
        }
        if (d && newestNumber(d) > before) {
          message(note, `Attempt ${d.attempts[d.attempts.length - 1].number} failed; the next retry is scheduled.`);
          return;
        }
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
      if (current()) message(note, "The retry is queued but no attempt has been made yet; refresh later.");
    };
    reload();
  }

  // payloadView shows the body every attempt sent: pretty-printed to read,
  // and a button that copies the exact bytes (what the signature covers).
  function payloadView(body) {
    let pretty = body;
    try {
      pretty = JSON.stringify(JSON.parse(body), null, 2);
    } catch {
      // Not JSON (it always is): show it as it is.
    }
    const status = h("span", { id: "payload-copied", class: "muted", role: "status" });
    const copy = h("button", { type: "button", class: "secondary", id: "copy-payload" }, "Copy exact bytes");
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(body);
        status.textContent = `Copied ${new TextEncoder().encode(body).length} bytes.`;
      } catch (err) {
        status.textContent = "Could not copy (" + err.message + "): select the text instead.";
      }
    });
    return [
      h("h2", { id: "payload-title" }, "Payload"),
      h("p", { class: "muted" },
        "The body every attempt sent, shown indented; the copy is byte for byte what was signed."),
      h("div", { class: "buttons" }, copy, status),
      h("pre", { class: "body", id: "payload" }, pretty),
    ];
  }

  // attemptView shows one attempt: when, how long, what was sent and what
  // came back.
  function attemptView(a) {
    const headers = h("table", { class: "headers" },
      h("thead", null, h("tr", null, h("th", { scope: "col" }, "Header"), h("th", { scope: "col" }, "Value"))),
      h("tbody", null, a.request_headers.map((hd) => h("tr", null, h("td", null, h("code", null, hd.name)), h("td", { class: "wrap" }, h("code", null, hd.value))))));
    return h("article", { class: "attempt", "data-attempt": a.number },
      h("h3", null, "Attempt " + a.number + " ", httpBadge(a.response_status)),
      dl([
        ["Started", time(a.started_at)],
        ["Duration", a.duration_ms + " ms"],
        ["Remote address", a.remote_address ? h("code", null, a.remote_address) : "no connection"],
        ["Response status", a.response_status === null ? "none" : String(a.response_status)],
        ["Location", a.location ? h("code", null, a.location) : null],
        ["Error", a.error],
      ]),
      h("details", { open: true },
        h("summary", null, `Request headers (${a.request_headers.length})`),
        a.request_headers.length ? headers : h("p", { class: "muted" }, "Not recorded for this attempt.")),
      h("details", { open: true },
        h("summary", null, "Response body (first 4 KiB)"),
        a.response_body ? h("pre", { class: "body" }, a.response_body) : h("p", { class: "muted" }, "Empty.")));
  }

  // --- start --------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("sign-in-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", () => signOut(""));
    window.addEventListener("hashchange", route);
    route();
  });
})();
