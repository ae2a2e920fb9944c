// Pages the server writes in English (sign-in, errors): their words in the page's language.
import { initLanguage } from "./i18n.js";

initLanguage();
