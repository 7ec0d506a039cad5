//! Unit tests of `rules`.

use super::*;

fn task(text: &str) -> Task {
    classify(&Conversation {
        last_user: text,
        turns: 1,
        ..Conversation::default()
    })
    .task
}

#[test]
fn english_tasks() {
    assert_eq!(
        task("Write a Python function that reverses a linked list."),
        Task::Code
    );
    assert_eq!(
        task("Can you review this code?\n```js\nlet a = 1;\nlet b = a + 2;\n```"),
        Task::Code
    );
    assert_eq!(
            task("Summarize this code for a release note:\n```rust\nfn main() { println!(\"hi\"); }\n```"),
            Task::Summarization
        );
    assert_eq!(
            task("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether?"),
            Task::Math
        );
    assert_eq!(
        task("Translate 'good morning' into French."),
        Task::Translation
    );
    assert_eq!(
        task("Write a poem about the autumn sea."),
        Task::CreativeWriting
    );
    assert_eq!(
        task("Pretend you are a pirate and greet me."),
        Task::Roleplay
    );
    assert_eq!(
        task("Classify this review as positive or negative: great phone!"),
        Task::Classification
    );
    assert_eq!(
        task("Extract all dates from this email: meet on 3 May, ship on 9 May."),
        Task::Extraction
    );
    assert_eq!(task("Why is the sky blue?"), Task::OpenQa);
    assert_eq!(task("hi there"), Task::Chat);
}

#[test]
fn chinese_tasks() {
    assert_eq!(
        task("花店里上午运来560枝玫瑰，卖掉了368枝，又运来了208枝．现在花店里有多少枝玫瑰？"),
        Task::Math
    );
    assert_eq!(
        task("请将以下英文句子翻译成中文:Hello, how are you today?"),
        Task::Translation
    );
    assert_eq!(
        task("请用一句话总结以下段落：保护环境的重要意义随着我国经济的发展。"),
        Task::Summarization
    );
    assert_eq!(
        task("对以下五本书进行分类： 《百年孤独》、《人类简史》、《三体》。"),
        Task::Classification
    );
    assert_eq!(task("列出5种可以改善睡眠质量的方法。"), Task::Brainstorming);
    assert_eq!(
        task("请创作一首歌曲，歌曲的主题是“爱情与分别”"),
        Task::CreativeWriting
    );
    assert_eq!(
        task("编写一个python程序，筛选出所有年龄大于等于18岁的人。"),
        Task::Code
    );
    assert_eq!(task("为什么在夏天喝冰镇饮料会感觉很凉爽？"), Task::OpenQa);
}

#[test]
fn complexity_follows_task_constraints_and_length() {
    let easy = classify(&Conversation {
        last_user: "hello",
        turns: 1,
        ..Default::default()
    });
    assert_eq!(easy.complexity, Complexity::Low);
    let hard = classify(&Conversation {
        last_user:
            "Implement a thread-safe LRU cache in Rust. It must support get and put in O(1), \
                        must not use unsafe, and should include tests. First design the API, then \
                        implement it, finally explain the trade-offs in exactly 3 bullet points.",
        turns: 1,
        prompt_tokens: 400,
        ..Default::default()
    });
    assert_eq!(hard.task, Task::Code);
    assert_eq!(hard.complexity, Complexity::High);
    assert!(hard.strong_score > easy.strong_score);
}

#[test]
fn deterministic() {
    let c = Conversation {
        last_user: "Solve x^2 = 9 step by step",
        turns: 1,
        ..Default::default()
    };
    assert_eq!(classify(&c), classify(&c));
}
