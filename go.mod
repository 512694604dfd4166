module github.com/xfsfree/xfsfree

go 1.26
