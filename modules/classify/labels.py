"""The 28 GoEmotions labels and the hand-written prototype phrases of the zero-shot classifier.

Each label's prototype is the normalised mean embedding of its phrases: short,
varied, first- and second-person lines of the kind a chat character says. They
were written for Greenroom; 'neutral' has none (it wins when nothing else is close).
"""
from __future__ import annotations

GOEMOTIONS = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity",
    "desire", "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear",
    "gratitude", "grief", "joy", "love", "nervousness", "optimism", "pride", "realization", "relief",
    "remorse", "sadness", "surprise", "neutral",
)
"""SillyTavern's expression names (and talkinghead's emotion templates), in SillyTavern's order."""

NEUTRAL = "neutral"

PROTOTYPES: dict[str, tuple[str, ...]] = {
    "admiration": (
        "I admire you so much.", "That was truly impressive, you are amazing.",
        "What a brilliant piece of work, I look up to you.", "You are incredibly talented.",
        "Wow, that performance was magnificent."),
    "amusement": (
        "Haha, that is hilarious!", "That joke made me laugh out loud.", "Lol, you are so funny.",
        "I can't stop giggling at this.", "That's so amusing, what a silly thing to do."),
    "anger": (
        "I am furious with you!", "This makes me so angry I could scream.", "How dare you do that to me!",
        "I'm absolutely livid and enraged.", "Get out of my sight, I hate what you did!"),
    "annoyance": (
        "Ugh, that is so annoying.", "Stop bothering me, it's getting on my nerves.",
        "This is irritating, can you just quit it?", "Seriously, again? How tiresome.",
        "I'm fed up with this nonsense.", "That constant noise has been bugging me all day."),
    "approval": (
        "Yes, I agree, that's a good idea.", "Sounds good to me, go ahead.", "I approve of this plan.",
        "That's right, well done, exactly as it should be.", "Okay, I support your decision."),
    "caring": (
        "Are you okay? Let me take care of you.", "Please rest, I'll look after you.",
        "I'm here for you if you need anything.", "Be careful and stay safe, I worry about you.",
        "Let me help you with that, don't strain yourself."),
    "confusion": (
        "I'm confused, what do you mean?", "Wait, I don't understand any of this.",
        "Huh? That makes no sense to me.", "I'm lost, can you explain it again?",
        "I'm puzzled, none of this adds up."),
    "curiosity": (
        "I wonder how that works.", "Tell me more, I'm curious!", "What's inside the box? I want to know.",
        "That's interesting, why did it happen?", "I'd love to find out more about this."),
    "desire": (
        "I want that so badly.", "I wish I could have it, I long for it.", "I crave a taste of that cake.",
        "If only I could go there, I yearn for it.", "I really want you to kiss me."),
    "disappointment": (
        "That's disappointing, I expected more.", "I'm let down, it didn't turn out the way I hoped.",
        "What a shame, all that effort for nothing.", "I had high hopes, but it was a letdown.",
        "Oh well, I'm disappointed in the result."),
    "disapproval": (
        "I don't approve of that at all.", "That's wrong, you shouldn't have done it.",
        "No, I disagree with this decision.", "That behavior is unacceptable.",
        "I object, that's not how it should be done."),
    "disgust": (
        "Eww, that's disgusting.", "Gross, that smell makes me want to vomit.", "That is revolting and vile.",
        "Yuck, I feel sick just looking at it.", "How repulsive, get it away from me."),
    "embarrassment": (
        "This is so embarrassing, I'm blushing.", "I want to hide, how humiliating.",
        "Oh no, everyone saw me trip, how awkward.", "I'm so ashamed and red in the face.",
        "Please don't look at me, that was mortifying."),
    "excitement": (
        "I'm so excited, I can't wait!", "This is thrilling, let's go!", "Woohoo, the trip is tomorrow!",
        "I'm pumped and full of energy for this!", "How exciting, this is going to be epic!"),
    "fear": (
        "I'm scared, please don't leave me alone.", "I'm terrified of what's in the dark.",
        "Help, something is chasing me!", "I'm afraid I'm going to die.",
        "That noise frightened me, I'm shaking with fear."),
    "gratitude": (
        "Thank you so much!", "I'm really grateful for your help.", "Thanks, I appreciate it.",
        "I can't thank you enough for what you did.", "Thank you, that means a lot to me."),
    "grief": (
        "My mother died and I can't stop mourning.", "I'm devastated by the loss of my best friend.",
        "We buried him today, the grief is unbearable.", "My heart is broken since she passed away.",
        "I miss my late father so terribly."),
    "joy": (
        "I'm so happy today!", "This is wonderful, I feel joyful.", "What a delightful day, I'm glad.",
        "I'm full of joy and cheer.", "Yay, everything is great and I'm smiling."),
    "love": (
        "I love you with all my heart.", "You mean everything to me, darling.", "I adore you, sweetheart.",
        "I'm in love with you.", "I love this so much, it's my favorite thing."),
    "nervousness": (
        "I'm so nervous about the exam.", "My hands are shaking, I'm anxious.",
        "I'm worried it will go wrong, I feel uneasy.", "Butterflies in my stomach before the interview.",
        "I'm tense and jittery, what if I fail?"),
    "optimism": (
        "I'm sure things will get better.", "Tomorrow will be a better day, I'm hopeful.",
        "We can do this, it will all work out.", "I believe everything will be fine in the end.",
        "Let's stay positive, good things are coming."),
    "pride": (
        "I'm so proud of what I achieved.", "I did it all by myself, I'm proud.",
        "Look at my work, I'm proud of it.", "I'm proud of you, my child.",
        "We won the championship and I feel so proud."),
    "realization": (
        "Oh, now I get it!", "I just realized what was going on.", "Wait, so that's why it happened!",
        "It suddenly dawned on me.", "Ah, I see now, it all makes sense."),
    "relief": (
        "Phew, what a relief.", "Thank goodness it's over, I can finally relax.",
        "I'm relieved that everyone is safe.", "That weight is off my shoulders now.",
        "Oh good, the test came back negative, I'm so relieved.",
        "I was so worried, but it turned out fine after all."),
    "remorse": (
        "I'm so sorry, it was my fault.", "I regret what I did, please forgive me.",
        "I feel guilty for hurting you.", "I apologize, I should never have said that.",
        "I wish I could take back my mistake."),
    "sadness": (
        "I feel so sad and lonely.", "I've been crying all night.", "I'm unhappy and depressed.",
        "Everything feels gloomy and hopeless.", "My heart feels heavy with sorrow."),
    "surprise": (
        "Wow, I didn't expect that!", "What? No way, that's unbelievable!", "Oh my god, you're here?",
        "That came out of nowhere, I'm shocked.", "Really? I'm astonished!"),
}
