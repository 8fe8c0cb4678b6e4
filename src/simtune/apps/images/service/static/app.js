// The similar-images page: talks to GET /page, POST /search, GET /search/{id} and GET /random; no build step.
// Its title and filter boxes come from /page: the class name (labelled collections only) and the collection's
// own metadata fields; a card shows the class name, or the file name where there are no classes.
"use strict";

const $ = (id) => document.getElementById(id);
let page = { title: "Similar images", noun: "images", filters: [] };

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function filters() {
  return page.filters
    .map((field) => [field.name, $(`filter-${field.name}`).value.trim()])
    .filter(([, value]) => value)
    .map(([name, value]) => `${name}=${value}`);
}

function filterBox(field) {
  const label = document.createElement("label");
  const input = document.createElement("input");
  input.id = `filter-${field.name}`;
  input.type = field.type === "keyword" ? "text" : "number";
  if (field.type === "float") input.step = "any";
  input.placeholder = "any";
  label.append(`${field.name.replace("_", " ")} `, input);
  return label;
}

async function loadPage() {
  page = await call(fetch("/page"));
  document.title = `simtune · ${page.title.toLowerCase()}`;
  $("title").textContent = page.title;
  $("random").textContent = `Random ${page.noun.replace(/s$/, "")}`;
  $("filters").replaceChildren(...page.filters.map(filterBox));
}

function card(item, withScore) {
  const figure = document.createElement("figure");
  figure.className = "card";
  figure.dataset.id = item.id;
  const image = document.createElement("img");
  image.src = item.image_url;
  image.alt = item.class_name || item.file || "photo";
  image.loading = "lazy";
  const name = document.createElement("strong");
  name.className = "class-name";
  name.textContent = item.class_name || item.file || "(unnamed)";
  const details = document.createElement("span");
  const metadata = page.filters.map((field) => field.name).filter((name) => name !== "class_name");
  const present = (v) => v !== undefined && v !== null && v !== "";
  const labelled = metadata.filter((name) => present(item[name])).map((name) => (item.class_name ? item[name] : `${name}: ${item[name]}`));
  details.textContent = [...labelled, item.split].filter(present).join(" · ");
  const text = document.createElement("figcaption");
  text.append(name, document.createElement("br"), details);
  if (withScore) {
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = ` ${item.score.toFixed(3)}`;
    text.append(score);
  }
  figure.append(image, text);
  return figure;
}

function showQuery(src, label) {
  $("query").hidden = false;
  $("query-image").src = src;
  $("query-caption").textContent = label;
}

function showResults(results) {
  const grid = $("results");
  grid.replaceChildren(...results.map((item) => {
    const element = card(item, true);
    element.addEventListener("click", () => searchById(item.id));
    return element;
  }));
  setStatus(results.length ? `${results.length} similar ${page.noun}` : `no similar ${page.noun} match the filter`);
}

async function call(request) {
  const response = await request;
  const body = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
  if (!response.ok) {
    const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg).join("; ") : body.detail;
    throw new Error(detail || `HTTP ${response.status}`);
  }
  return body;
}

async function searchFile(file) {
  showQuery(URL.createObjectURL(file), file.name);
  setStatus("searching…");
  const form = new FormData();
  form.append("file", file);
  form.append("k", $("k").value);
  filters().forEach((f) => form.append("filter", f));
  try {
    showResults((await call(fetch("/search", { method: "POST", body: form }))).results);
  } catch (error) {
    $("results").replaceChildren();
    setStatus(error.message, true);
  }
}

async function searchById(id) {
  setStatus("searching…");
  const params = new URLSearchParams({ k: $("k").value });
  filters().forEach((f) => params.append("filter", f));
  try {
    const body = await call(fetch(`/search/${encodeURIComponent(id)}?${params}`));
    showQuery(body.query.image_url, body.query.class_name || body.query.file || "");
    showResults(body.results);
  } catch (error) {
    setStatus(error.message, true);
  }
}

async function randomItem() {
  try {
    await searchById((await call(fetch("/random"))).id);
  } catch (error) {
    setStatus(error.message, true);
  }
}

loadPage().catch((error) => setStatus(error.message, true));
$("file").addEventListener("change", (event) => {
  if (event.target.files.length) searchFile(event.target.files[0]);
});
$("random").addEventListener("click", randomItem);
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer.files.length) searchFile(event.dataTransfer.files[0]);
});
