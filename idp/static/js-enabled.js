// GOV.UK Frontend's page-template snippet, as a file: the CSP allows no inline script.
document.body.className += ' js-enabled' + ('noModule' in HTMLScriptElement.prototype ? ' govuk-frontend-supported' : '');
