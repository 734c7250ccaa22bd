// The portal's few behaviours, bound from data attributes so that pages carry no inline
// script or event handler (the Content-Security-Policy allows scripts from this origin only).
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  // <form data-confirm="Sure?">: ask before sending.
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
    return;
  }
  // <form data-copy-checked="#selection input[name=paths]">: send the boxes ticked in
  // another form along (put-back takes the browse page's selection), folders without "/".
  if (form.dataset.copyChecked) {
    form.querySelectorAll("input[data-copied]").forEach((input) => input.remove());
    document.querySelectorAll(`${form.dataset.copyChecked}:checked`).forEach((box) => {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = box.name;
      input.value = box.value.replace(/\/$/, "");
      input.dataset.copied = "";
      form.appendChild(input);
    });
  }
});

document.addEventListener("click", (event) => {
  // <button data-print>: the browser's print dialog (printable invoices).
  if (event.target.closest("[data-print]")) window.print();
});
