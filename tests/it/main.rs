mod tar;
