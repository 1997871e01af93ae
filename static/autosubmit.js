// Posts the SAML response form as soon as the page loads; without JavaScript the
// visible Continue button does the same. On the sign-out page, follows its Continue link
// once the page (and the sign-out images on it) have loaded, instead of a timed
// <meta refresh>, which moves keyboard and screen-reader users on without warning.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("saml-post");
  if (form) { form.submit(); }
});
window.addEventListener("load", function () {
  var next = document.querySelector("a[data-follow]");
  if (next) { window.location.assign(next.href); }
});
