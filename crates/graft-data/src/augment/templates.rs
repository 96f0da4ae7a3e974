//! Template pools of the mined task families: `(question, answer)` pairs with `{placeholders}`.
//!
//! The template wording is a fact of the method, reproduced from AdaptLLM's `utils/read.py`
//! (github.com/microsoft/LMOps, folder `adaptllm`, MIT license, Cheng et al., ICLR 2024) so that the
//! pools are the same size and say the same things. An example renders as question + " " + answer.

/// A `(question, answer)` template pair.
pub type Pair = (&'static str, &'static str);

/// NLI, "classify": 28 answered Yes/No/Maybe, 5 with a connective, 4 with a relation name.
pub const NLI_CLASSIFY: [Pair; 37] = [
    ("{premise}\nBased on the sentence above can we infer that \"{hypothesis}\"?", "{answer}"),
    ("{premise}\nBased on this sentence can we infer that the following sentence is true?\n{hypothesis}\nAnswer:", "{answer}"),
    ("{premise}\nCan we draw the following hypothesis?\n{hypothesis}\n{options_}", "{answer}"),
    ("{premise}\nDoes this next sentence follow, given the preceding text?\n{hypothesis}\nAnswer:", "{answer}"),
    ("Can we draw the following hypothesis from the context?\nContext: {premise}\nHypothesis: {hypothesis}\nAnswer:", "{answer}"),
    ("{hypothesis}\nDetermine if the sentence is true based on the text below:\n{premise}\nAnswer:", "{answer}"),
    ("Premise: {premise}\nHypothesis: {hypothesis}\nDoes the premise entail the hypothesis?", "{answer}"),
    ("Premise: {premise}\nHypothesis: {hypothesis}\nIs the hypothesis entailed by the premise?", "{answer}"),
    ("Here is a premise:\n{premise}\nHere is a hypothesis:\n{hypothesis}\nIs it possible to infer that if the premise is true, then so is the hypothesis?", "{answer}"),
    ("Sentence 1: {premise}\nSentence 2: {hypothesis}\nIs this second sentence entailed by the first sentence?\n{options_}", "{answer}"),
    ("Based on the premise \"{premise}\", can we infer the hypothesis \"{hypothesis}\" is true?", "{answer}"),
    ("Premise:\n\"{premise}\" Based on this premise, is the hypothesis \"{hypothesis}\" true?\n{options_}", "{answer}"),
    ("If {premise}, can we infer that \"{hypothesis}\"?", "{answer}"),
    ("{premise}\nDoes it follow that \"{hypothesis}\"?\n{options_}", "{answer}"),
    ("Question: If \"{premise}\", does this mean that \"{hypothesis}\"?\nAnswer:", "{answer}"),
    ("If \"{premise}\", can we infer \"{hypothesis}\"?", "{answer}"),
    ("If \"{premise}\", does it logically follow that \"{hypothesis}\"?", "{answer}"),
    ("Based on the sentence \"{premise}\", is the sentence \"{hypothesis}\" a true sentence?", "{answer}"),
    ("Premise: {premise}\nHypothesis: {hypothesis}\nCan we infer that the hypothesis is true if the premise is true?", "{answer}"),
    ("Here is a premise: \"{premise}\"\nHere is a hypothesis: \"{hypothesis}\"\nDoes the premise tell us whether the hypothesis is true?", "{answer}"),
    ("Is the premise \"{premise}\" true if \"{hypothesis}\"?\n{options_}", "{answer}"),
    ("If \"{premise}\", can we infer that \"{hypothesis}\"?\n{options_}", "{answer}"),
    ("If \"{premise}\", is \"{hypothesis}\" correct?", "{answer}"),
    ("Let's say that \"{premise}\"\nCan we now say that \"{hypothesis}\"?", "{answer}"),
    ("Does \"{hypothesis}\" appear to be an accurate statement based on \"{premise}\"?", "{answer}"),
    ("Is it possible to draw the statement that \"{hypothesis}\" if \"{premise}\"?", "{answer}"),
    ("Is \"{hypothesis}\" true if \"{premise}\"?\n{options_}", "{answer}"),
    ("Sentence 1: \"{premise}\"\nSentence 2: \"{hypothesis}\"\nIs sentence 2 true, based on sentence 1?", "{answer}"),
    ("Sentence 1: \"{premise}\"\nSentence 2: \"{hypothesis}\"\nWhich word is the best to connect them? Therefore, However, or Moreover?", "{connect_answer}"),
    ("Choose the most suitable word to link the following sentences:\n1. {premise}\n2. {hypothesis}\nOptions:\n- Therefore\n- However\n- Moreover", "{connect_answer}"),
    ("Connect the following sentence: {premise}\nChoose the appropriate word to link it with: \"{hypothesis}\"\nOptions: Therefore, However, Moreover", "{connect_answer}"),
    ("Given the sentence: {premise}\nChoose the appropriate word from the options (Therefore, However, Moreover) to connect it with: \"{hypothesis}\"\nWord:", "{connect_answer}"),
    ("Connect the sentence: {premise}\nFrom the choices (Therefore, However, Moreover), select the word that best links it to: \"{hypothesis}\"\nAnswer:", "{connect_answer}"),
    ("Assess the relationship between Sentence 1: \"{premise}\"\nSentence 2: \"{hypothesis}\"\nIs it characterized as Entailment, Neutral, or Contradictory?", "{relation_answer}"),
    ("Given Sentence 1: \"{premise}\"\nSentence 2: \"{hypothesis}\"\nHow would you describe the relationship between these two sentences? Entailment, Neutral, or Contradictory?", "{relation_answer}"),
    ("Considering Sentence 1: \"{premise}\"\nSentence 2: \"{hypothesis}\"\nHow do you perceive the connection between these two sentences in terms of their relationship?", "{relation_answer}"),
    ("Assess the relationship between Sentence 1: \"{premise}\"\nSentence 2: \"{hypothesis}\"\nWould you categorize their connection as Entailment, Neutral, or Contradictory?", "{relation_answer}"),
];

/// NLI, "generate" an entailed hypothesis.
pub const NLI_GENERATE_ENTAIL: [Pair; 13] = [
    ("Complete the following sentence\n{premise} Accordingly,", "{hypothesis}"),
    ("{premise} Therefore:", "{hypothesis}"),
    ("{premise} Thus?", "{hypothesis}"),
    ("Based on the statement \"{premise}\", provide a continuation using the word \"Hence\" to express the following idea.\nContinuation:", "{hypothesis}"),
    ("Question: Complete the following statement using the word \"Therefore\" in relation to \"{premise}\"\nAnswer:", "{hypothesis}"),
    ("{premise} {verbalizer}?", "{hypothesis}"),
    ("{premise} {verbalizer}:", "{hypothesis}"),
    ("{premise}\nProduce a sentence that encompasses the concept from the above statement. Sentence:", "{hypothesis}"),
    ("\"{premise}\" Generate a sentence that follows from the notion presented in the previous statement.", "{hypothesis}"),
    ("{premise}\nCraft a sentence that develops the idea put forth in the preceding statement.", "{hypothesis}"),
    ("{premise}\nCreate a sentence that is a logical extension of the idea in the previous statement.\nAnswer:", "{hypothesis}"),
    ("\"{premise}\" Formulate a sentence that is consistent with the concept presented in the prior statement.", "{hypothesis}"),
    ("{premise}\nDevelop a sentence that builds upon the thought conveyed in the above statement.", "{hypothesis}"),
];

/// NLI, "generate" a neutral continuation.
pub const NLI_GENERATE_NEUTRAL: [Pair; 5] = [
    ("Complete the following sentence: {premise} {verbalizer},", "{hypothesis}"),
    ("Complete the following sentence\n{premise} {verbalizer}:", "{hypothesis}"),
    ("{premise} {verbalizer}?", "{hypothesis}"),
    ("Based on the statement {premise}, provide a continuation using the word \"{verbalizer}\" to express the following idea.\nContinuation:", "{hypothesis}"),
    ("Question: Complete the following statement using the word \"{verbalizer}\" in relation to \"{premise}\"\nAnswer:", "{hypothesis}"),
];

/// NLI, "generate" a contradicting continuation.
pub const NLI_GENERATE_CONTRADICT: [Pair; 7] = [
    ("Complete the following sentence: {premise} On the contrary,", "{hypothesis}"),
    ("{premise} But,\nWhat is a completion for it?", "{hypothesis}"),
    ("Complete the following sentence\n{premise} However?", "{hypothesis}"),
    ("Sentence: {premise} {verbalizer},\nHow do you finish this sentence?", "{hypothesis}"),
    ("{premise} {verbalizer}:", "{hypothesis}"),
    ("Based on the statement {premise}, provide a continuation using \"In contrast\" to express the following idea.", "{hypothesis}"),
    ("Complete the following statement using the word \"But\" in relation to \"{premise}\".", "{hypothesis}"),
];

/// Commonsense, cause → effect (answer: the effect).
pub const CAUSE_EFFECT: [Pair; 24] = [
    (
        "Question: What is the effect of \"{cause}\"? Answer:",
        "{effect}",
    ),
    (
        "Here is a premise: {cause}\nWhat is the effect?",
        "{effect}",
    ),
    ("Q: What is the result of \"{cause}\"? A:", "{effect}"),
    ("What is a plausible effect of \"{cause}\"?", "{effect}"),
    ("Based on \"{cause}\", what is the result?", "{effect}"),
    ("{cause}\nEffect:", "{effect}"),
    (
        "What is the result of the following sentence?\n{cause}\nResult:",
        "{effect}",
    ),
    ("Q: What happens after \"{cause}\"? A:", "{effect}"),
    ("{cause}\nWhat happens next?", "{effect}"),
    (
        "Considering the cause: {cause}\nWhat could be the resulting effect?",
        "{effect}",
    ),
    (
        "Given that: {cause}\nWhat do you anticipate as the outcome?",
        "{effect}",
    ),
    ("What could stem from \"{cause}\"?", "{effect}"),
    ("Explore the consequences of: {cause}\nAnswer:", "{effect}"),
    ("What might follow from \"{cause}\"?", "{effect}"),
    (
        "Based on the cause: \"{cause}\"\nWhat is likely to be the effect?",
        "{effect}",
    ),
    (
        "If \"{cause}\" occurs, what is the probable effect?",
        "{effect}",
    ),
    (
        "Imagine \"{cause}\" taking place; what would be the resultant effect?",
        "{effect}",
    ),
    (
        "Given the scenario: {cause}\nWhat effect could be expected?",
        "{effect}",
    ),
    (
        "Examine the potential outcomes of \"{cause}\"\nOutcome:",
        "{effect}",
    ),
    (
        "Anticipating the result of: {cause}\nWhat could be the effect?",
        "{effect}",
    ),
    ("What is the expected effect of \"{cause}\"?", "{effect}"),
    (
        "Considering the event: {cause}\nWhat could be an outcome?",
        "{effect}",
    ),
    (
        "If \"{cause}\" happens, what could be the subsequent effect?",
        "{effect}",
    ),
    (
        "Explore the aftermath of: \"{cause}\"\nWhat could be the effect?",
        "{effect}",
    ),
];

/// Commonsense, effect → cause (answer: the cause).
pub const EFFECT_CAUSE: [Pair; 31] = [
    ("Q: \"{effect}\" What is the cause? A:", "{cause}"),
    ("Here is a result: {effect}\nWhat is the cause?", "{cause}"),
    ("What is the reason of \"{effect}\"?", "{cause}"),
    ("What is a plausible reason for \"{effect}\"?", "{cause}"),
    ("what is the cause of \"{effect}\"?", "{cause}"),
    ("{effect}\nCause:", "{cause}"),
    ("Question: What is the reason of the following sentence?\n{effect}\nAnswer:", "{cause}"),
    ("What happens before \"{effect}\"?", "{cause}"),
    ("{effect}\nWhat happens before?", "{cause}"),
    ("Given the outcome: {effect}\nWhat could have led to this result?", "{cause}"),
    ("Uncover the cause behind: \"{effect}\".", "{cause}"),
    ("What might be responsible for {effect}?", "{cause}"),
    ("Identify a probable cause for: {effect}\nCause:", "{cause}"),
    ("What event or circumstance could explain \"{effect}\"?", "{cause}"),
    ("When observing: {effect}\nWhat should we consider as the cause?", "{cause}"),
    ("What events or factors contributed to: {effect}?", "{cause}"),
    ("Considering the effect: \"{effect}\"\nWhat could be the underlying cause?", "{cause}"),
    ("Before \"{effect}\" occurred, what factor might have caused it?", "{cause}"),
    ("What do you think led to the occurrence of: \"{effect}\"?", "{cause}"),
    ("Analyze the occurrence of: {effect}\nWhat could be identified as the cause?", "{cause}"),
    ("Given that: {effect}\nWhat was the triggering cause?", "{cause}"),
    ("Explore the background of: \"{effect}\"\nWhat could have instigated it?", "{cause}"),
    ("What played a role in bringing about: {effect}?", "{cause}"),
    ("Delve into the circumstances behind \"{effect}\"\nWhat could be the originating cause? Answer:", "{cause}"),
    ("Complete the following sentence\n{effect} because of", "{cause}"),
    ("Your task is to complete the following sentence: {effect} due to", "{cause}"),
    ("{effect} owing to\nHow would you complete it:", "{cause}"),
    ("Based on the statement {effect}, provide a continuation using \"{verbalizer}\" to express the following idea.\nContinuation:", "{cause}"),
    ("Question: Complete the following statement using \"{verbalizer}\" in relation to \"{effect}\".", "{cause}"),
    ("Answer the question...{effect} {verbalizer}?", "{cause}"),
    ("{effect} {verbalizer}:", "{cause}"),
];

/// Paraphrase, similar meaning (answer: sentence 2).
pub const PARAPHRASE_SIMILAR: [Pair; 11] = [
    ("Complete the following sentence: {sentence1} Namely,", "{sentence2}"),
    ("{sentence1} In other words\nProvide the missing portion of the above sentence:", "{sentence2}"),
    ("Q: {sentence1} That is to say?", "{sentence2}"),
    ("Question: Complete the following statement using \"{verbalizer}\" in relation to \"{sentence1}\"\nAnswer:", "{sentence2}"),
    ("Question: {sentence1} {verbalizer}?", "{sentence2}"),
    ("{sentence1} {verbalizer},\nHow do you finish this sentence?", "{sentence2}"),
    ("Extend the thought in this sentence: {sentence1} To elaborate further:", "{sentence2}"),
    ("Build upon the statement {sentence1} by utilizing \"{verbalizer}\" to express the following concept.", "{sentence2}"),
    ("\"{sentence1}\" Generate a sentence that expresses a further elaboration to the previous statement.", "{sentence2}"),
    ("\"{sentence1}\" Expand on the previous statement:", "{sentence2}"),
    ("{sentence1}\nProvide an explanatory sentence:", "{sentence2}"),
];

/// Paraphrase, different meaning (answer: sentence 2).
pub const PARAPHRASE_DIFFERENT: [Pair; 12] = [
    ("\"{sentence1}\" Generate a sentence that expresses a contrasting idea to the previous statement.", "{sentence2}"),
    ("Can you create a sentence that contradicts the meaning of \"{sentence1}\"?", "{sentence2}"),
    ("Given the sentence \"{sentence1}\", can you come up with a statement that contradicts its meaning?", "{sentence2}"),
    ("Here is a sentence: \"{sentence1}\". Now, provide a sentence that contradicts its meaning.", "{sentence2}"),
    ("Your challenge is to create a sentence that expresses the opposite of \"{sentence1}\". Answer:", "{sentence2}"),
    ("Contradict the meaning of the sentence \"{sentence1}\" by crafting another sentence.", "{sentence2}"),
    ("Compose a sentence that contradicts the idea conveyed in \"{sentence1}\".", "{sentence2}"),
    ("Can you generate a sentence that has a conflicting meaning compared to \"{sentence1}\"?", "{sentence2}"),
    ("In opposition to the sentence \"{sentence1}\", create a sentence with a contradictory meaning.", "{sentence2}"),
    ("Your task is to provide a sentence that negates or contradicts the message of \"{sentence1}\".", "{sentence2}"),
    ("Given the sentence \"{sentence1}\", come up with a different sentence that contradicts its meaning?", "{sentence2}"),
    ("Craft a sentence that goes against the meaning of the sentence \"{sentence1}\".", "{sentence2}"),
];

/// Word-to-text from domain keywords: 20 answer with the sentence, 5 with the keywords.
pub const KEYWORD: [Pair; 25] = [
    ("Concepts: {tripleset}\nWrite a sentence that includes all these {domain} words.\nSentence:", "{target}"),
    ("Concepts: {tripleset}\nFind a sentence in the article that includes all these words in the {domain} domain.\nSentence:", "{target}"),
    ("Keywords: {tripleset}\nWhat is a sentence that includes all these {domain} keywords?", "{target}"),
    ("Here are some concepts: {tripleset}\nWhat is a sentence about these {domain} concepts in the article?", "{target}"),
    ("Produce a sentence which mentions all of these {domain} concepts: {tripleset}\nAnswer:", "{target}"),
    ("Write a {domain} sentence about the following things:\n{tripleset}\nAnswer:", "{target}"),
    ("Generate a sentence that includes all the following {domain} words: {tripleset}. Sentence:", "{target}"),
    ("Sentence: {target}\nWhat are the keywords about {domain} in this sentence?", "{tripleset}"),
    ("What are the most important words about {domain} in the following sentence\n{target}\nWords:", "{tripleset}"),
    ("{target}\nIdentify the most salient words about {domain} in the above sentence.", "{tripleset}"),
    ("Concepts: {tripleset}\nWhat would a {domain} sentence about these concepts be like?", "{target}"),
    ("Here are some words about {domain}: {tripleset}.\nWrite a sentence that describes them.", "{target}"),
    ("Here are some {domain} words: {tripleset}.\nTell me a sentence that describes them in the article.", "{target}"),
    ("Here are some concepts about {domain}: {tripleset}.\nGenerate a detailed description of them.\nDescription:", "{target}"),
    ("Generate a {domain} sentence about: {tripleset}\nSentence:", "{target}"),
    ("Write a {domain} sentence about [{tripleset}].", "{target}"),
    ("Produce a long descriptive sentence about {domain} that uses all these words: {tripleset}.\nSentence:", "{target}"),
    ("Create a set of three {domain} concepts in the following sentence.\n{target}\nConcepts:", "{tripleset}"),
    ("{tripleset}\nWhat is the sentence in the article that verbalizes these {domain} concepts?", "{target}"),
    ("Keywords: {tripleset}\nTell me the sentence in the article about these {domain} concepts.\nSentence:", "{target}"),
    ("Here are some {domain} keywords: {tripleset}.\nWrite a sentence that includes them.", "{target}"),
    ("Generate a sentence that includes these {domain} keywords [{tripleset}].", "{target}"),
    ("Find a sentence in the above article that includes the following {domain} words: [{tripleset}].", "{target}"),
    ("Produce a long descriptive {domain} sentence that uses all these words: {tripleset}\nAnswer:", "{target}"),
    ("Sentence: {target}\nWhat keywords about {domain} can be extracted from this sentence?", "{tripleset}"),
];

/// Word-to-text, definition (answer: the definition).
pub const DEFINITION: [Pair; 12] = [
    ("Q: {word} {verbalizer}? A:", "{definition}"),
    ("Next question: {word} {verbalizer}:", "{definition}"),
    ("{word} {verbalizer}?", "{definition}"),
    ("{word} {verbalizer}:", "{definition}"),
    ("What is the definition of {word}?", "{definition}"),
    ("How to define {word}?", "{definition}"),
    ("Explain the meaning of \"{word}\".", "{definition}"),
    ("What does \"{word}\" refer to?", "{definition}"),
    (
        "Please elucidate the concept of {word}\nAnswer:",
        "{definition}",
    ),
    (
        "What is the meaning of the term \"{word}\"?",
        "{definition}",
    ),
    ("Could you offer a definition for {word}?", "{definition}"),
    (
        "Could you offer a definition for {word}?\nDefinition:",
        "{definition}",
    ),
];

/// Word-to-text, topic (answer: what the subject is about).
pub const TOPIC: [Pair; 19] = [
    ("{sentence} {verbalizer}?", "{topic}"),
    ("{sentence} {verbalizer}:", "{topic}"),
    ("Q: {sentence} {verbalizer}? A:", "{topic}"),
    ("Answer the question\n{sentence} {verbalizer}?", "{topic}"),
    ("Answer the question\n{sentence} {verbalizer}:", "{topic}"),
    (
        "Answer the following question:\n{sentence} {verbalizer}?\nAnswer:",
        "{topic}",
    ),
    ("Answer this question:\n{sentence} {verbalizer}?", "{topic}"),
    (
        "Please answer this question: {sentence} {verbalizer}?\nAnswer:",
        "{topic}",
    ),
    ("Answer the question...{sentence} {verbalizer}?", "{topic}"),
    (
        "Can you tell me the answer to \"{sentence} {verbalizer}?\"?",
        "{topic}",
    ),
    ("Next question: {sentence} {verbalizer}:", "{topic}"),
    ("Q: {sentence} {verbalizer}:", "{topic}"),
    (
        "Please answer this question: {sentence} {verbalizer}:",
        "{topic}",
    ),
    (
        "Write the answer: {sentence} {verbalizer}?\nAnswer:",
        "{topic}",
    ),
    (
        "What is the answer to \"{sentence} {verbalizer}:\"?",
        "{topic}",
    ),
    ("Answer this question.\n{sentence} {verbalizer}:", "{topic}"),
    (
        "Answer the following question. {sentence} {verbalizer}:",
        "{topic}",
    ),
    ("Question: {sentence} {verbalizer}?", "{topic}"),
    ("{sentence} {verbalizer}??", "{topic}"),
];

/// Fills `{name}` placeholders from `values`; an unknown name is left as written.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').map(|close| (&after[..close], close)) {
            Some((name, close)) if values.iter().any(|(k, _)| *k == name) => {
                let value = values.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
                out.push_str(value.unwrap_or_default());
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_known_names_only() {
        let s = fill("{a} and {b} {c", &[("a", "x"), ("b", "{a}")]);
        assert_eq!(s, "x and {a} {c");
    }
}
