//! Layouts that wrap the raw text (title summarization, text completion, both, neither) and the
//! intro lines placed before the mined tasks.
//!
//! Wording reproduced from AdaptLLM's `utils/read.py` (github.com/microsoft/LMOps, folder
//! `adaptllm`, MIT license) so that the pools match the method's. Placeholders: `{domain}`, `{title}`,
//! `{context_wo_title}`, `{context}` (title line + text), `{context_1st_half}`, `{context_2nd_half}`,
//! `{qa_demos}` (intro + mined tasks).

/// Summarization only: 10 ask for the title after the text, 10 give the title and ask for the text.
pub const SUMMARIZE: [&str; 20] = [
    "{context_wo_title}\n\nWhat is a potential title for this context in the {domain} domain?\nTitle: {title}{qa_demos}",
    "{domain} article: {context_wo_title}{qa_demos}\n\nWhat is the title of this article? {title}",
    "Article: {context_wo_title}{qa_demos}\n\nGenerate a title for this {domain} paragraph.\nTitle: {title}",
    "{context_wo_title}\n\nWrite a title for the above {domain} article. {title}{qa_demos}",
    "{context_wo_title}\nBriefly summarize this {domain} text? {title}{qa_demos}",
    "Article in the {domain} domain: {context_wo_title}\n\nGenerate a short summary for this article.\nAnswer: {title}{qa_demos}",
    "{context_wo_title}{qa_demos}\n\nSummarize the aforementioned {domain} text in a single sentence. {title}",
    "{context_wo_title}\nCan you generate a short summary of the above {domain} paragraph? {title}{qa_demos}",
    "{context_wo_title}\nPlease write a short summary for the above article in the {domain} domain. {title}{qa_demos}",
    "Context: {context_wo_title}{qa_demos}\n\nWhat was this {domain} article about? {title}",
    "Write an article about {domain} domain, using the following title: {title}.\nArticle: {context_wo_title}{qa_demos}",
    "Title: {title}\nWrite a an article about {domain} domain based on this title. {context_wo_title}{qa_demos}",
    "Use the title \"{title}\" to write a {domain} article.\nArticle: {context_wo_title}{qa_demos}",
    "Craft an informative article about the {domain} domain, drawing from the following summary: {title}\nArticle: {context_wo_title}{qa_demos}",
    "Create a {domain} article inspired by the provided title: {title}\nOutput: {context_wo_title}{qa_demos}",
    "Can you develop an engaging {domain} article using the title \"{title}\"? {context_wo_title}{qa_demos}",
    "Write an informative piece on the {domain} domain, using the provided title: {title}. {context_wo_title}{qa_demos}",
    "Craft an article focused on {domain}, utilizing the provided title: {title}.\nArticle: {context_wo_title}{qa_demos}",
    "Compose an in-depth {domain} article based on the title: {title}\nArticle: {context_wo_title}{qa_demos}",
    "Can you create an article delving into the {domain} domain, incorporating the given title \"{title}\"? {context_wo_title}{qa_demos}",
];

/// Text completion only (the first half starts with the title line when there is one).
pub const COMPLETION: [&str; 10] = [
    "Please complete an article about {domain}: {context_1st_half} {context_2nd_half}{qa_demos}",
    "Here is the first part of an article about {domain}: {context_1st_half}\n\nHow would you continue the article? {context_2nd_half}{qa_demos}",
    "Explore the initial section of an article on {domain}: {context_1st_half}\nWhat could be the next part? {context_2nd_half}{qa_demos}",
    "Read the beginning of an article about {domain}: {context_1st_half}\n\nWrite the subsequent part? {context_2nd_half}{qa_demos}",
    "In this article snippet about {domain}, you will find the first part: {context_1st_half}\nHow would you compose the remaining section? {context_2nd_half}{qa_demos}",
    "Take a look at the introductory part of an article on {domain}: {context_1st_half}\n\nYour challenge is to write the following segment\nAnswer: {context_2nd_half}{qa_demos}",
    "Review the initial portion of an article discussing {domain}: {context_1st_half}\nWhat would you include in the rest of the article? {context_2nd_half}{qa_demos}",
    "Consider the first segment of an article centered around {domain}: {context_1st_half}\nContinuation of the article: {context_2nd_half}{qa_demos}",
    "Examine the first segment of an article exploring {domain}: {context_1st_half}\n\nQuestion: Complete the article?\nCompletion: {context_2nd_half}{qa_demos}",
    "Read the beginning of an article on {domain}: {context_1st_half}{qa_demos}\n\nHow would you extend the article? {context_2nd_half}",
];

/// Text completion followed by title summarization.
pub const SUMMARIZE_COMPLETION: [&str; 10] = [
    "Please complete an article about {domain}: {context_1st_half} {context_2nd_half}{qa_demos}\n\nWhat was this article about?\nAnswer: {title}",
    "Here is the first part of an article about {domain}: {context_1st_half}\n\nPlease complete it.\nCompletion: {context_2nd_half}{qa_demos}\n\nWhat was this article about? {title}",
    "Explore the initial section of an article on {domain}: {context_1st_half}\n\nProvide the text ending? {context_2nd_half}\n\nPropose a title for this context? {title}{qa_demos}",
    "Read the beginning of an article about {domain}: {context_1st_half}\n\nYour task is to add the subsequent part. {context_2nd_half}\n\nBriefly summarize this text. Summary: {title}{qa_demos}",
    "In this article snippet about {domain}, you will find the first half: {context_1st_half}\n\nCompose the remaining section: {context_2nd_half}\n\nWrite a title for it.\nTitle: {title}{qa_demos}",
    "Take a look at the first part of an article on {domain}: {context_1st_half}\n\nYour challenge is to write the following segment. {context_2nd_half}\n\nWhat is a very short summary of the above text? {title}{qa_demos}",
    "Review the initial portion of an article discussing {domain}: {context_1st_half}\n\nWhat would you include in the rest of the article? {context_2nd_half}\n\nWhat is a shorter version of this article?\nShort version: {title}{qa_demos}",
    "Consider the opening of an article centered around {domain}: {context_1st_half}\n\nNow, provide the continuation of the article.\nContinuation: {context_2nd_half}\n\nWhat was this article about? {title}{qa_demos}",
    "Examine the first segment of an article exploring {domain}: {context_1st_half}\n\nComplete the article? {context_2nd_half}\nCan you generate a short summary of the above paragraph?\nAnswer: {title}{qa_demos}",
    "Read the beginning of an article on {domain}: {context_1st_half}\n\nHow would you extend the article? {context_2nd_half}\n\nPlease write a short summary for the above article. {title}{qa_demos}",
];

/// Neither summarization nor completion: the text (title line included) and the tasks.
pub const NEITHER: [&str; 13] = [
    "Please answer some questions about the following article in the {domain} domain:\n{context}{qa_demos}",
    "Read this {domain} article and answer questions\n{context}{qa_demos}",
    "{context}{qa_demos}",
    "Answer some questions about this article about {domain} domain:\n{context}{qa_demos}",
    "Here are some questions about this {domain} article: {context}{qa_demos}",
    "{domain} article: {context}{qa_demos}",
    "Article: {context}{qa_demos}",
    "Read this article in the {domain} domain: {context}{qa_demos}",
    "Given the {domain} article: {context}{qa_demos}",
    "Context: {context}{qa_demos}",
    "Article in the {domain} domain: {context}{qa_demos}",
    "Use this {domain} article to answer the questions: {context}{qa_demos}",
    "Answer based on context in the {domain} domain:\n{context}{qa_demos}",
];

/// Lines joining the text to the mined tasks (two are just a blank line).
pub const INTROS: [&str; 18] = [
    "\nPlease answer some questions about the above article in the {domain} domain:\n\n",
    "\n\n",
    "\nAnswer some questions about the above article about {domain} domain:\n\n",
    "\n\nWhat are the answers to these questions?\n",
    "\n\nNow answer these questions:\n\n",
    "\nNow answer the following questions:\n\n",
    "\n\nWhat are the answers to the questions or completions:\n",
    "\nHow would one answer these questions in the {domain} domain:\n\n",
    "\n\nUse evidence from the {domain} article to answer these questions:\n\n",
    "\n\nUse this above {domain} article to answer the questions:\n",
    "\nAnswer the following {domain} questions based on the article:\n\n",
    "\n\n",
    "\nAnswer these {domain} questions:\n",
    "\n\nBased on the above article in the {domain} domain, answer questions.\n\n",
    "\nWrite some question-answer pairs about the above {domain} article:\n\n",
    "\nRespond to the following questions based on the above article:\n\n",
    "\n\nUpon reading the article, answer the following questions:\n\n",
    "\nEvaluate your understanding of the article by answering the following questions:\n\n",
];

/// Placeholders holding long text: a task's prompt never reaches back past one of them.
const BIG: [&str; 5] = [
    "{context_wo_title}",
    "{context}",
    "{context_1st_half}",
    "{context_2nd_half}",
    "{qa_demos}",
];

/// The prompt of the task answered by `answer` (a placeholder) in a layout: the template's own words
/// between the previous long placeholder (or the start) and `answer`, with `values` filled in, trimmed.
/// `None` if the layout has no `answer`.
pub fn prompt_before(layout: &str, answer: &str, values: &[(&str, &str)]) -> Option<String> {
    let end = layout.find(answer)?;
    let head = &layout[..end];
    let start = BIG
        .iter()
        .filter_map(|p| head.rfind(p).map(|i| i + p.len()))
        .max()
        .unwrap_or(0);
    Some(
        super::templates::fill(&head[start..], values)
            .trim()
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_is_the_instruction_before_the_answer() {
        let v = [("domain", "finance"), ("title", "T")];
        assert_eq!(
            prompt_before(SUMMARIZE[0], "{title}", &v).unwrap(),
            "What is a potential title for this context in the finance domain?\nTitle:"
        );
        assert_eq!(
            prompt_before(SUMMARIZE[10], "{context_wo_title}", &v).unwrap(),
            "Write an article about finance domain, using the following title: T.\nArticle:"
        );
        assert_eq!(
            prompt_before(COMPLETION[1], "{context_2nd_half}", &v).unwrap(),
            "How would you continue the article?"
        );
    }

    #[test]
    fn every_layout_places_the_tasks_once() {
        let all = SUMMARIZE
            .iter()
            .chain(&COMPLETION)
            .chain(&SUMMARIZE_COMPLETION)
            .chain(&NEITHER);
        for t in all {
            assert_eq!(t.matches("{qa_demos}").count(), 1, "{t}");
        }
    }
}
