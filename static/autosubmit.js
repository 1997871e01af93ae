// Posts the SAML response form as soon as the page loads; without JavaScript the
// visible Continue button does the same.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("saml-post");
  if (form) { form.submit(); }
});
