"""The pages' own words in Traditional Chinese and Cantonese (static/i18n.js and static/i18n/)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.browser.helpers import wrap_up
from tests.helpers import PASSWORD

pytestmark = pytest.mark.browser

# What the advisor console shows in each language; Cantonese takes what it does not say
# differently from Traditional Chinese (the heading, the summary).
ADVISOR_WORDS = {
    "zh-Hant": {
        "html_lang": "zh-Hant",
        "contact_language": "zh",
        "heading": "客戶經理工作台",
        "incoming": "新的會話請求",
        "status_label": "狀態",
        "available": "空閒",
        "busy": "忙碌",
        "language": "普通話",
        "countdown": "剩餘 ",
        "summary": "主題：銀行卡。需要 cards ≥ 2。",
        "so_far": "先前的對話",
        "accept": "接受",
        "connected": "已接通",
        "customer": "客戶",
        "you": "您",
        "send": "傳送",
        "end": "結束",
    },
    "yue": {
        "html_lang": "zh-Hant-HK",
        "contact_language": "yue",
        "heading": "客戶經理工作台",
        "incoming": "新嚟嘅會話",
        "status_label": "狀態",
        "available": "得閒",
        "busy": "忙緊",
        "language": "廣東話",
        "countdown": "仲有 ",
        "summary": "主題：銀行卡。需要 cards ≥ 2。",
        "so_far": "之前傾過嘅內容",
        "accept": "接受",
        "connected": "接通咗",
        "customer": "客戶",
        "you": "你",
        "send": "發送",
        "end": "結束",
    },
}


async def _sign_in_to(page, server, username: str, target: str) -> None:  # type: ignore[no-untyped-def]
    """Sign in and land on ``target``, query and all, with one page load there: the redirect to
    the sign-in form keeps only the path, and a second load would leave the first socket's
    grace period to set the advisor offline behind the test's back."""
    await page.goto(str(server.make_url(f"/login?next={quote(target, safe='/')}")))
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_url(lambda url: url.endswith(target))


@pytest.mark.parametrize("lang", ["zh-Hant", "yue"])
async def test_advisor_console_in_the_language_of_lang(
    lang, server, clients, advisor_factory, new_page, screenshot
):
    words = ADVISOR_WORDS[lang]
    advisor_user = await advisor_factory(languages=["en", "zh", "yue"])
    page = await new_page()  # the browser itself is in English
    await _sign_in_to(page, server, advisor_user.username, f"/advisor?lang={lang}")
    await page.wait_for_function("document.body.dataset.connection === 'open'")
    assert await page.evaluate("document.documentElement.lang") == words["html_lang"]
    assert await page.text_content("h1") == words["heading"]
    assert await page.text_content("#offers-title") == words["incoming"]
    assert await page.text_content(".toolbar label span") == words["status_label"]

    customer = await clients(guest=True)
    started = await customer.request(
        "session.start",
        channels=["text"],
        language=words["contact_language"],
        topic="cards",
        skip_bot=True,
    )
    contact_id = started["contact_id"]
    await customer.request("chat.send", contact_id=contact_id, text="my card is stuck")
    await page.select_option("#status", "available")
    # the offer may come at once and the state go on to busy: the choice is what stays
    chosen = await page.eval_on_selector("#status", "s => s.selectedOptions[0].textContent")
    assert chosen == words["available"]

    offer = page.locator(f".offer[data-contact-id='{contact_id}']")
    await offer.wait_for()
    assert (await offer.locator(".countdown").text_content()).startswith(words["countdown"])
    assert await offer.locator(".language").text_content() == words["language"]
    assert await offer.locator(".summary").text_content() == words["summary"]
    assert await offer.locator(".transcript-box summary").text_content() == words["so_far"]
    assert await offer.locator(".transcript li .who").text_content() == words["customer"]
    assert await offer.locator(".accept").is_visible()
    assert await offer.locator(".accept").text_content() == words["accept"]
    await screenshot(page, f"advisor-offer-{lang}")

    await offer.locator(".accept").click()
    panel = page.locator(f".contact[data-contact-id='{contact_id}']")
    await panel.locator(".state[data-state=connected]").wait_for()
    await page.wait_for_selector("#agent-state[data-state=busy]")
    assert await page.text_content("#agent-state") == words["busy"]
    assert await panel.locator(".state").text_content() == words["connected"]
    assert await panel.locator(".chat-form button").text_content() == words["send"]
    assert await panel.locator(".end").text_content() == words["end"]
    await panel.locator(".chat-input").fill("Hello, I can help with that.")
    await panel.locator(".chat-input").press("Enter")
    await panel.locator(".chat li[data-seq='2']").wait_for()
    who = await panel.locator(".chat li .who").all_text_contents()
    assert who == [words["customer"], words["you"]]
    await screenshot(page, f"advisor-connected-{lang}")

    await customer.request("session.end", contact_id=contact_id)
    await panel.locator(".state[data-state=wrap_up]").wait_for()
    await wrap_up(panel)
    await panel.wait_for(state="detached")
    assert new_page.errors == []


async def test_the_page_language_comes_from_lang_then_the_browser(server, new_page):
    # no ?lang=, a browser in Taiwanese Chinese: Traditional, and the contact in Mandarin
    page = await new_page(locale="zh-TW")
    await page.goto(str(server.make_url("/")))
    await page.wait_for_function("document.body.dataset.connection === 'open'")
    assert await page.evaluate("document.documentElement.lang") == "zh-Hant"
    assert await page.text_content("#start legend") == "您希望如何溝通？"
    assert await page.input_value("#language") == "zh"
    assert await page.text_content("#start button[type=submit]") == "開始"

    # ?lang= comes first; the contact follows the page
    await page.goto(str(server.make_url("/?lang=yue")))
    await page.wait_for_function("document.body.dataset.connection === 'open'")
    assert await page.evaluate("document.documentElement.lang") == "zh-Hant-HK"
    assert await page.text_content("#start legend") == "你想點樣同我哋傾？"
    assert await page.input_value("#language") == "yue"

    # a server-rendered <html lang> (one not marked as only the default) beats the browser
    pick = await page.evaluate(
        """async () => {
          const { pickLanguage } = await import('/static/i18n.js');
          const root = document.createElement('html');
          root.setAttribute('lang', 'zh-Hans');
          const marked = document.createElement('html');
          marked.setAttribute('lang', 'en');
          marked.setAttribute('data-lang-default', '');
          return [
            pickLanguage({ search: '', root, browser: ['zh-HK'] }),
            pickLanguage({ search: '?lang=en', root, browser: ['zh-HK'] }),
            pickLanguage({ search: '', root: marked, browser: ['zh-HK'] }),
            pickLanguage({ search: '?lang=xx', root: marked, browser: ['fr-FR'] }),
          ];
        }"""
    )
    assert pick == ["zh-Hans", "en", "yue", "en"]
    assert new_page.errors == []


async def test_the_sign_in_page_in_the_browser_s_language(server, new_page, screenshot):
    page = await new_page(locale="zh-HK")
    await page.goto(str(server.make_url("/login")))
    await page.wait_for_function("document.documentElement.lang === 'zh-Hant-HK'")
    assert await page.text_content("h1") == "登入"
    assert await page.text_content("label:has(input[name=password]) span") == "密碼"
    assert await page.text_content(".hint a[href='/']") == "用訪客身份開始傾偈"
    await screenshot(page, "login-yue")
    assert new_page.errors == []


async def test_every_string_has_every_language(server, new_page):
    """Each English key resolves in each language (Cantonese through Traditional Chinese), with
    the same {placeholders}, and only English keys are used."""
    page = await new_page()
    await page.goto(str(server.make_url("/login")))
    problems = await page.evaluate(
        """async () => {
          const { CATALOGUES, FALLBACK } = await import('/static/i18n.js');
          const names = (s) => typeof s === 'string'
            ? [...s.matchAll(/\\{(\\w+)\\}/g)].map((m) => m[1]).sort().join(',') : null;
          const problems = [];
          for (const [lang, catalogue] of Object.entries(CATALOGUES)) {
            for (const key of Object.keys(catalogue)) {
              if (!(key in CATALOGUES.en)) problems.push(`${lang}: ${key} is not an English key`);
            }
            if (lang === 'en') continue;
            for (const [key, english] of Object.entries(CATALOGUES.en)) {
              const own = FALLBACK[lang].filter((code) => code !== 'en');
              const value = own.map((code) => CATALOGUES[code][key]).find((v) => v !== undefined);
              if (value === undefined) problems.push(`${lang}: no ${key}`);
              else if (typeof english === 'string' && names(english) !== names(value)) {
                problems.push(`${lang}: ${key} has {${names(value)}}, English {${names(english)}}`);
              }
            }
          }
          return problems;
        }"""
    )
    assert problems == []
