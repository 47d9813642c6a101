"""Spanish comments get a sentiment too; English scores are unchanged by the Spanish lexicon."""

import pytest

from feedback import text_analytics as ta


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("¡Excelente atención, muy amables!", "positive"),
        ("Todo bien, gracias", "positive"),
        ("El servicio fue pésimo y el cajero muy grosero", "negative"),
        ("La tienda estaba sucia y la cola muy lenta", "negative"),
        ("No fue bueno", "negative"),
        ("Compré pan", "neutral"),
        ("Great service, thanks!", "positive"),
        ("The cashier was rude and I waited forever", "negative"),
    ],
)
def test_sentiment_en_es(text, label):
    assert ta.sentiment(text)[0] == label


def test_english_lexicon_untouched():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    plain = SentimentIntensityAnalyzer()
    for text in ["Terrible wait, horrible staff", "Good value", "not good at all", "no problem, great"]:
        assert ta.sentiment(text)[1] == round(plain.polarity_scores(text)["compound"], 4)
    for word, value in plain.lexicon.items():
        assert ta._analyzer().lexicon[word] == value
