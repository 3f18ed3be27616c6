// kitshop storefront: plain JS against the gateway's public API. The access token
// lives in sessionStorage, so it leaves with the tab.
"use strict";

const state = { token: sessionStorage.getItem("kitshop.token") || "", me: null, cursor: "" };

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function money(m) {
  if (!m) return "";
  return new Intl.NumberFormat("en", { style: "currency", currency: m.currency }).format(m.amount / 100);
}

function flash(msg, kind = "ok") {
  const f = $("#flash");
  f.textContent = msg;
  f.className = msg ? kind : "";
}

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body, headers = {}) {
  const h = { Accept: "application/json", ...headers };
  if (body !== undefined) h["Content-Type"] = "application/json";
  if (state.token) h.Authorization = "Bearer " + state.token;
  const resp = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const e = data.error || {};
    if (resp.status === 401 && state.token) setToken("");
    let msg = e.message || resp.statusText;
    const wait = resp.headers.get("Retry-After");
    if (wait) msg += ` (try again in ${wait} s)`;
    throw new APIError(resp.status, e.code || "error", msg);
  }
  return data;
}

function setToken(token) {
  state.token = token;
  state.me = null;
  if (token) sessionStorage.setItem("kitshop.token", token);
  else sessionStorage.removeItem("kitshop.token");
  renderWho();
}

async function loadMe() {
  if (!state.token) return renderWho();
  try {
    state.me = await api("GET", "/v1/users/me");
  } catch (e) {
    flash(e.message, "error");
  }
  renderWho();
}

function renderWho() {
  $("#whoami").textContent = state.me ? `Signed in as ${state.me.name} <${state.me.email}>` : "";
  $("#logout").hidden = !state.token;
  $("#account-link").hidden = !!state.token;
}

function needLogin() {
  if (state.token) return false;
  flash("Please sign up or log in first.", "error");
  show("account");
  return true;
}

// Views.

const loaders = { products: loadProducts, cart: loadCart, orders: loadOrders, emails: loadEmails, account: async () => {} };

function show(view) {
  if (!loaders[view]) view = "products";
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== "view-" + view;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === view);
  if (location.hash !== "#" + view) history.replaceState(null, "", "#" + view);
  loaders[view]().catch((e) => flash(e.message, "error"));
}

async function loadProducts(more = false) {
  const list = $("#product-list");
  if (!more) {
    list.replaceChildren();
    state.cursor = "";
  }
  const q = new URLSearchParams({ limit: "20" });
  if (state.cursor) q.set("cursor", state.cursor);
  const page = await api("GET", "/v1/products?" + q);
  for (const p of page.products) {
    const qty = el("input", { class: "qty", type: "number", min: "1", value: "1", "aria-label": "quantity of " + p.name });
    const add = el("button", { class: "add", "data-sku": p.sku, onclick: () => addToCart(p, Number(qty.value)) }, "Add to cart");
    add.disabled = p.available <= 0;
    list.append(el("li", { "data-sku": p.sku },
      el("h3", {}, p.name),
      el("p", { class: "muted" }, p.description || ""),
      el("p", {}, el("span", { class: "price" }, money(p.price)), " · ", `${p.available} available`),
      qty, " ", add));
  }
  state.cursor = page.next_cursor || "";
  $("#more-products").hidden = !state.cursor;
}

async function addToCart(p, quantity) {
  if (needLogin()) return;
  try {
    const cart = await api("GET", "/v1/cart");
    const line = (cart.items || []).find((i) => i.sku === p.sku);
    const total = (line ? line.quantity : 0) + quantity;
    await api("PUT", "/v1/cart/items/" + encodeURIComponent(p.sku), { quantity: total });
    flash(`Added ${quantity} × ${p.name} to your cart.`);
  } catch (e) {
    flash(e.message, "error");
  }
}

async function loadCart() {
  if (needLogin()) return;
  const cart = await api("GET", "/v1/cart");
  const rows = (cart.items || []).map((i) => {
    const qty = el("input", { class: "qty", type: "number", min: "0", value: String(i.quantity), "aria-label": "quantity of " + (i.name || i.sku) });
    qty.addEventListener("change", () => setQuantity(i.sku, Number(qty.value)));
    return el("tr", { "data-sku": i.sku },
      el("td", {}, i.name || i.sku), el("td", {}, qty), el("td", {}, money(i.unit_price)), el("td", {}, money(i.line_total)),
      el("td", {}, el("button", { class: "remove", onclick: () => removeItem(i.sku) }, "Remove")));
  });
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: "5", class: "muted" }, "Your cart is empty.")));
  $("#cart-items").replaceChildren(...rows);
  $("#cart-total").textContent = money(cart.total);
  $("#checkout").disabled = (cart.items || []).length === 0;
}

async function setQuantity(sku, quantity) {
  try {
    await api("PUT", "/v1/cart/items/" + encodeURIComponent(sku), { quantity });
  } catch (e) {
    flash(e.message, "error");
  }
  await loadCart();
}

async function removeItem(sku) {
  try {
    await api("DELETE", "/v1/cart/items/" + encodeURIComponent(sku));
  } catch (e) {
    flash(e.message, "error");
  }
  await loadCart();
}

// One key per checkout attempt: pressing the button again after a network error
// repeats the same order instead of placing a second one.
let checkoutKey = "";

async function checkout(ev) {
  ev.preventDefault();
  if (needLogin()) return;
  const button = $("#checkout");
  button.disabled = true;
  checkoutKey = checkoutKey || newKey();
  const payment = {
    card_number: $("#card-number").value.replace(/\s+/g, ""),
    exp_month: Number($("#card-exp-month").value),
    exp_year: Number($("#card-exp-year").value),
    cvc: $("#card-cvc").value.trim(),
  };
  try {
    const order = await api("POST", "/v1/orders", { payment }, { "Idempotency-Key": checkoutKey });
    checkoutKey = "";
    flash(order.status === "confirmed" ? `Order ${order.id} confirmed: ${money(order.total)}.` : `Order ${order.id} is ${order.status}.`);
    show("orders");
  } catch (e) {
    if (e.status < 500) checkoutKey = "";
    flash(e.message, "error");
    button.disabled = false;
  }
}

async function loadOrders() {
  if (needLogin()) return;
  const data = await api("GET", "/v1/orders");
  const items = (data.orders || []).map((o) =>
    el("li", { "data-order": o.id },
      el("h3", {}, `Order ${o.id}`),
      el("p", {}, el("span", { class: "status status-" + o.status }, o.status), " · ", money(o.total)),
      el("p", { class: "muted" }, new Date(o.created_at).toLocaleString()),
      el("ul", {}, ...(o.items || []).map((i) => el("li", {}, `${i.quantity} × ${i.sku} at ${money(i.unit_price)}`))),
      ["pending", "confirmed"].includes(o.status) ? el("button", { class: "cancel", onclick: () => cancelOrder(o.id) }, "Cancel order") : ""));
  if (items.length === 0) items.push(el("li", { class: "muted" }, "No orders yet."));
  $("#orders-list").replaceChildren(...items);
}

async function cancelOrder(id) {
  try {
    await api("POST", `/v1/orders/${encodeURIComponent(id)}/cancel`, undefined, { "Idempotency-Key": "cancel-" + id });
    flash(`Order ${id} cancelled; the payment is refunded.`);
  } catch (e) {
    flash(e.message, "error");
  }
  await loadOrders();
}

async function loadEmails() {
  if (needLogin()) return;
  const data = await api("GET", "/v1/notifications");
  const items = (data.notifications || []).map((n) =>
    el("li", { "data-notification": n.id }, el("strong", {}, n.subject), ` — to ${n.to}, ${new Date(n.sent_at).toLocaleString()}`));
  if (items.length === 0) items.push(el("li", { class: "muted" }, "No emails yet."));
  $("#emails-list").replaceChildren(...items);
}

// Forms and navigation.

$("#signup-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const email = $("#signup-email").value.trim();
  const password = $("#signup-password").value;
  try {
    await api("POST", "/v1/users", { name: $("#signup-name").value.trim(), email, password });
    await login(email, password);
    flash(`Welcome, ${state.me ? state.me.name : email}!`);
    show("products");
  } catch (e) {
    flash(e.message, "error");
  }
});

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await login($("#login-email").value.trim(), $("#login-password").value);
    flash(`Signed in as ${state.me ? state.me.email : ""}.`);
    show("products");
  } catch (e) {
    flash(e.message, "error");
  }
});

async function login(email, password) {
  const t = await api("POST", "/v1/auth/login", { email, password });
  setToken(t.access_token);
  await loadMe();
}

$("#logout").addEventListener("click", () => {
  setToken("");
  flash("Signed out.");
  show("products");
});
$("#checkout-form").addEventListener("submit", checkout);
$("#more-products").addEventListener("click", () => loadProducts(true).catch((e) => flash(e.message, "error")));
window.addEventListener("hashchange", () => show(location.hash.slice(1)));

loadMe();
show(location.hash.slice(1) || "products");
