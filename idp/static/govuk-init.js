// Starts GOV.UK Frontend's components (error summary focus, button double-click guard, ...).
// Every page also works without it.
import { initAll } from './govuk/govuk-frontend.min.js';

initAll();
