// The error pages: their words in the page's language (the server writes them in English).
import { initLanguage } from "./i18n.js";

initLanguage();
